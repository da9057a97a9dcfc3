// Passwords: the account changes its own (its other sessions end); the operator sets a forgotten one.
import { call } from "/console/api.js";
import { el, errorBox } from "/console/format.js";

export function changePasswordForm() {
  const current = el("input", { name: "current_password", type: "password", autocomplete: "current-password", required: true });
  const fresh = el("input", { name: "new_password", type: "password", autocomplete: "new-password", minlength: "8", required: true });
  const status = el("div");
  const form = el(
    "form",
    { class: "panel", id: "change-password" },
    el("label", {}, "Current password", current),
    el("label", {}, "New password", fresh),
    el("button", { type: "submit" }, "Change password"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const reply = await call("POST", "/api/v1/account:changePassword", {
        body: { current_password: current.value, new_password: fresh.value },
      });
      form.reset();
      const ended = Number(reply.ended_sessions ?? 0);
      status.replaceChildren(el("p", { class: "note", role: "status" }, `Password changed; ${ended} other session(s) ended.`));
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  return form;
}

// 18 random bytes as base64url: 24 characters, as `tollgate account password` makes them.
function generatedPassword() {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

export function resetPasswordButton(account) {
  const button = el("button", { type: "button" }, "Reset password");
  button.addEventListener("click", async () => {
    if (!confirm(`Set a new password for “${account.name}”? Its console sessions end; its API keys keep working.`)) return;
    const password = generatedPassword();
    try {
      await call("POST", `/api/v1/accounts/${encodeURIComponent(account.id)}:setPassword`, { body: { password } });
      button.replaceWith(el("span", { class: "secret", role: "status" }, "New password (shown once): ", el("code", {}, password)));
    } catch (error) {
      button.after(errorBox(error));
    }
  });
  return button;
}
