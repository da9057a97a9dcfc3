// The console's shell: login, navigation between pages (#/name), logout.
import { call, saveSession, session } from "/console/api.js";
import { el, errorBox } from "/console/format.js";
import { homePage } from "/console/home.js";
import { logsPage } from "/console/logs.js";
import { operatorPage } from "/console/operator.js";
import { pricingPage } from "/console/pricing.js";
import { tokensPage } from "/console/tokens.js";

const PAGES = { home: homePage, tokens: tokensPage, logs: logsPage, pricing: pricingPage, operator: operatorPage };
const main = document.getElementById("main");
let shown = 0; // the latest navigation: a slower, older page must not replace a newer one

function show(generation, ...nodes) {
  if (generation === shown) main.replaceChildren(...nodes);
}

function loginPage() {
  const name = el("input", { name: "name", autocomplete: "username", required: true });
  const password = el("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const status = el("div");
  const form = el(
    "form",
    { class: "panel", id: "login" },
    el("h1", {}, "Log in to Tollgate"),
    el("label", {}, "Name", name),
    el("label", {}, "Password", password),
    el("button", { type: "submit" }, "Log in"),
    el("p", { class: "note" }, "The operator logs in with the name “operator” and the operator key as password."),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren(el("p", { class: "note" }, "Logging in…"));
    try {
      const reply = await call("POST", "/api/v1/sessions", { body: { name: name.value, password: password.value } });
      saveSession({ token: reply.session_token, name: name.value, operator: name.value === "operator" });
      // replaceState changes the address at once and fires no hashchange: exactly one render follows.
      history.replaceState(null, "", name.value === "operator" ? "#/operator" : "#/home");
      render();
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  return form;
}

async function logout() {
  try {
    await call("DELETE", "/api/v1/sessions/current");
  } catch {
    // the session may already be gone; forget it either way
  }
  saveSession(null);
  history.replaceState(null, "", "/");
  render();
}

async function render() {
  const current = session();
  const nav = document.getElementById("nav");
  nav.hidden = !current;
  if (!current) {
    shown += 1;
    main.replaceChildren(loginPage());
    return;
  }
  // The operator's session manages accounts; the account pages need an account's session.
  document.getElementById("nav-operator").hidden = !current.operator;
  for (const link of nav.querySelectorAll(".account-page")) link.hidden = current.operator;
  const allowed = current.operator ? ["operator"] : ["home", "tokens", "logs", "pricing"];
  const asked = location.hash.replace(/^#\//, "");
  const name = allowed.includes(asked) ? asked : allowed[0];
  const page = PAGES[name];
  for (const link of nav.querySelectorAll("a")) link.classList.toggle("current", link.hash === `#/${name}`);
  const generation = ++shown;
  show(generation, el("p", { class: "note" }, "Loading…"));
  try {
    show(generation, await page());
  } catch (error) {
    if (!session()) show(generation, loginPage(), errorBox(error));
    else show(generation, errorBox(error), el("p", { class: "note" }, "Reload the page to try again."));
  }
}

document.getElementById("logout").addEventListener("click", logout);
window.addEventListener("hashchange", render);
render();
