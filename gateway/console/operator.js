// Operator: accounts, credit a balance (one Idempotency-Key per form submission), set a discount, disable or
// enable, reset a forgotten password, download an account's logs.
import { call, download, get, query } from "/console/api.js";
import { el, errorBox, table, usd, when } from "/console/format.js";
import { resetPasswordButton } from "/console/password.js";

function creditForm(account, refresh) {
  const amount = el("input", { name: "amount_usd", inputmode: "decimal", placeholder: "25.00", required: true, size: "8" });
  const reason = el("input", { name: "reason", placeholder: "reason", size: "12" });
  const status = el("span");
  const form = el("form", { class: "credit" }, amount, " ", reason, " ", el("button", { type: "submit" }, "Credit"), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    // A new key per submission: a retried request credits once, a second submission credits again.
    const key = crypto.randomUUID();
    try {
      await call("POST", `/api/v1/accounts/${encodeURIComponent(account.id)}:credit`, {
        body: { amount_usd: amount.value.trim(), reason: reason.value },
        headers: { "idempotency-key": key },
      });
      await refresh();
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  return form;
}

// PATCH sends only the fields in `changes`: the others stay as they are.
function update(account, changes) {
  return call("PATCH", `/api/v1/accounts/${encodeURIComponent(account.id)}`, { body: changes });
}

function discountForm(account, refresh) {
  const discount = el("input", { name: "discount", inputmode: "decimal", value: account.discount, required: true, size: "5", "aria-label": `Discount of ${account.name}` });
  const status = el("span");
  const form = el("form", { class: "discount" }, discount, " ", el("button", { type: "submit" }, "Set"), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await update(account, { discount: discount.value.trim() });
      await refresh();
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  return form;
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
            ["Credit", (a) => creditForm(a, refresh)],
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
