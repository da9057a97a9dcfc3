// Operator: accounts, credit or debit a balance (one Idempotency-Key per form submission), set a discount,
// disable or enable, reset a forgotten password, download an account's logs.
import { call, download, get, query } from "/console/api.js";
import { el, errorBox, table, usd, when } from "/console/format.js";
import { resetPasswordButton } from "/console/password.js";

// A form in an account's row: on submit `act(submitter)` runs and the table is drawn again; an error shows beside it.
function rowForm(cls, children, act, refresh) {
  const status = el("span");
  const form = el("form", { class: cls }, ...children, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await act(event.submitter);
      await refresh();
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  return form;
}

// One form, two buttons: Credit adds the amount, Debit takes it back (at most what running calls do not hold).
function moneyForm(account, refresh) {
  const amount = el("input", { name: "amount_usd", inputmode: "decimal", placeholder: "25.00", required: true, size: "8", "aria-label": `Amount for ${account.name}` });
  const reason = el("input", { name: "reason", placeholder: "reason", size: "12" });
  const buttons = ["credit", "debit"].map((action) =>
    el("button", { type: "submit", value: action }, action === "credit" ? "Credit" : "Debit"),
  );
  return rowForm("credit", [amount, " ", reason, " ", ...buttons], (submitter) => {
    const action = submitter?.value === "debit" ? "debit" : "credit";
    // A new key per submission: a retried request moves the money once, a second submission moves it again.
    return call("POST", `/api/v1/accounts/${encodeURIComponent(account.id)}:${action}`, {
      body: { amount_usd: amount.value.trim(), reason: reason.value },
      headers: { "idempotency-key": crypto.randomUUID() },
    });
  }, refresh);
}

// PATCH sends only the fields in `changes`: the others stay as they are.
function update(account, changes) {
  return call("PATCH", `/api/v1/accounts/${encodeURIComponent(account.id)}`, { body: changes });
}

function discountForm(account, refresh) {
  const discount = el("input", { name: "discount", inputmode: "decimal", value: account.discount, required: true, size: "5", "aria-label": `Discount of ${account.name}` });
  const set = el("button", { type: "submit" }, "Set");
  return rowForm("discount", [discount, " ", set], () => update(account, { discount: discount.value.trim() }), refresh);
}

function statusButton(account, refresh) {
  const label = account.disabled ? "Enable" : "Disable";
  const button = el("button", { type: "button" }, label);
  button.addEventListener("click", async () => {
    if (!account.disabled && !confirm(`Disable the account “${account.name}”? Its tokens and sessions stop working at once.`)) return;
    try {
      await update(account, { disabled: !account.disabled });
      await refresh();
    } catch (error) {
      button.after(errorBox(error));
    }
  });
  return button;
}

function logsButton(account) {
  const button = el("button", { type: "button" }, "Logs (CSV)");
  button.addEventListener("click", async () => {
    try {
      await download(`/api/v1/logs:export${query({ account_id: account.id })}`, `tollgate-logs-${account.name}.csv`);
    } catch (error) {
      button.after(errorBox(error));
    }
  });
  return button;
}

export async function operatorPage() {
  const list = el("div", { id: "account-list" });
  async function refresh() {
    try {
      const reply = await get("/api/v1/accounts?page_size=500");
      list.replaceChildren(
        table(
          [
            ["Name", (a) => a.name],
            ["Balance", (a) => usd(a.balance_micros), "num"],
            ["Held", (a) => usd(a.held_micros), "num"],
            ["Available", (a) => usd(a.available_micros), "num"],
            ["Created", (a) => when(a.create_time)],
            ["Status", (a) => (a.disabled ? "disabled" : "active")],
            ["Discount", (a) => discountForm(a, refresh)],
            ["Credit / debit", (a) => moneyForm(a, refresh)],
            ["", (a) => el("div", { class: "actions" }, statusButton(a, refresh), " ", resetPasswordButton(a), " ", logsButton(a))],
          ],
          reply.accounts,
          "No accounts yet: create one with `tollgate account create NAME` or POST /api/v1/accounts.",
        ),
      );
    } catch (error) {
      list.replaceChildren(errorBox(error));
    }
  }
  await refresh();
  return el("div", {}, el("h1", {}, "Operator — accounts"), list);
}
