// Tokens: create (the key is shown once), list with spent and remaining cap, edit, disable, delete.
import { call, get } from "/console/api.js";
import { el, errorBox, lines, table, usd, when } from "/console/format.js";

function localInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

// The form's fields as a Token message; the same form creates and edits.
function tokenForm(token, submitLabel, onSubmit, id = null) {
  const fields = {
    name: el("input", { name: "name", required: true, value: token.name ?? "" }),
    cap: el("input", { name: "spend_cap_usd", inputmode: "decimal", value: token.spend_cap_usd || "0" }),
    expiry: el("input", { name: "expire_time", type: "datetime-local", value: localInput(token.expire_time) }),
    models: el("input", { name: "allowed_models", placeholder: "all models", value: (token.allowed_models ?? []).join(", ") }),
    ips: el("input", { name: "allowed_ips", placeholder: "any address", value: (token.allowed_ips ?? []).join(", ") }),
    concurrency: el("input", { name: "max_concurrency", type: "number", min: "0", value: String(token.max_concurrency ?? 0) }),
  };
  const status = el("div");
  const form = el(
    "form",
    { class: "panel", id },
    el("label", {}, "Name", fields.name),
    el("label", {}, "Spend cap, USD (0 = unlimited)", fields.cap),
    el("label", {}, "Expires (your time; empty = never)", fields.expiry),
    el("label", {}, "Allowed models (comma-separated)", fields.models),
    el("label", {}, "Allowed IPs or CIDRs", fields.ips),
    el("label", {}, "Concurrent requests (0 = 100)", fields.concurrency),
    el("button", { type: "submit" }, submitLabel),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      name: fields.name.value,
      spend_cap_usd: fields.cap.value.trim() || "0",
      allowed_models: lines(fields.models.value),
      allowed_ips: lines(fields.ips.value),
      max_concurrency: Number(fields.concurrency.value || 0),
    };
    if (fields.expiry.value) body.expire_time = new Date(fields.expiry.value).toISOString();
    status.replaceChildren(el("p", { class: "note" }, "Saving…"));
    try {
      await onSubmit(body, status);
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  return form;
}

function keyOnce(reply) {
  const copied = el("span", { class: "note", role: "status" });
  const copy = el("button", { type: "button", id: "copy-key" }, "Copy key");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(reply.key);
      copied.textContent = " Copied.";
    } catch {
      copied.textContent = " Copy failed: select the key and copy it by hand.";
    }
  });
  return el(
    "div",
    { class: "once", id: "new-key" },
    el("p", {}, el("strong", {}, `Key of “${reply.token.name}”: copy it now — you will not see it again.`)),
    el("code", { id: "key-value" }, reply.key),
    " ",
    copy,
    copied,
  );
}

function actions(token, refresh) {
  const edit = el("button", { type: "button" }, "Edit");
  const toggle = el("button", { type: "button" }, token.disabled ? "Enable" : "Disable");
  const remove = el("button", { type: "button" }, "Delete");
  const box = el("span", {}, edit, " ", toggle, " ", remove);
  edit.addEventListener("click", () => {
    box.replaceChildren(
      tokenForm(token, "Save", async (body) => {
        await call("PATCH", `/api/v1/tokens/${encodeURIComponent(token.id)}`, { body });
        await refresh();
      }),
    );
  });
  toggle.addEventListener("click", async () => {
    await call("PATCH", `/api/v1/tokens/${encodeURIComponent(token.id)}`, { body: { disabled: !token.disabled } }).catch((e) => box.append(errorBox(e)));
    await refresh();
  });
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete the token “${token.name}”? Calls with its key fail at once; this cannot be undone.`)) return;
    await call("DELETE", `/api/v1/tokens/${encodeURIComponent(token.id)}`).catch((e) => box.append(errorBox(e)));
    await refresh();
  });
  return box;
}

function tokenTable(tokens, refresh) {
  return table(
    [
      ["Name", (t) => t.name],
      ["Key", (t) => t.masked_key],
      ["Spent", (t) => usd(t.spent_micros), "num"],
      ["Cap", (t) => (Number(t.spend_cap_micros) ? usd(t.spend_cap_micros) : "unlimited"), "num"],
      ["Remaining", (t) => (Number(t.spend_cap_micros) ? usd(t.remaining_cap_micros) : "—"), "num"],
      ["Expires", (t) => when(t.expire_time)],
      ["Models", (t) => (t.allowed_models.length ? t.allowed_models.join(", ") : "all")],
      ["Status", (t) => (t.disabled ? "disabled" : "active")],
      ["Last used", (t) => when(t.last_used_time)],
      ["", (t) => actions(t, refresh)],
    ],
    tokens,
    "No tokens yet: create one above, then use its key as your OpenAI API key.",
  );
}

export async function tokensPage() {
  const list = el("div", { id: "token-list" });
  const shown = el("div");
  async function refresh() {
    try {
      const reply = await get("/api/v1/tokens?page_size=500");
      list.replaceChildren(tokenTable(reply.tokens, refresh));
    } catch (error) {
      list.replaceChildren(errorBox(error));
    }
  }
  const create = tokenForm({}, "Create token", async (body, status) => {
    const reply = await call("POST", "/api/v1/tokens", { body });
    status.replaceChildren();
    shown.replaceChildren(keyOnce(reply));
    await refresh();
  }, "create-token");
  await refresh();
  return el("div", {}, el("h1", {}, "Tokens"), el("h2", {}, "New token"), create, shown, el("h2", {}, "Your tokens"), list);
}
