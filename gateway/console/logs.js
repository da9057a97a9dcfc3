// Logs: every call's metadata with filters, cursor pagination and CSV export.
import { download, get, query } from "/console/api.js";
import { count, el, errorBox, table, usd, when } from "/console/format.js";

const PAGE_SIZES = ["25", "50", "100", "500"];

const COLUMNS = [
  ["Time", (r) => when(r.create_time)],
  ["Token", (r) => r.token_name || r.token_id],
  ["Model asked", (r) => r.requested_model],
  ["Model served", (r) => r.served_model],
  ["Input", (r) => count(r.input_tokens), "num"],
  ["Cached", (r) => count(r.cached_tokens), "num"],
  ["Output", (r) => count(r.output_tokens), "num"],
  ["Cost", (r) => usd(r.cost_micros) + (r.estimated ? " (est.)" : ""), "num"],
  ["Latency", (r) => `${count(r.latency_ms)} ms`, "num"],
  ["TTFT", (r) => (Number(r.time_to_first_token_ms) ? `${count(r.time_to_first_token_ms)} ms` : "—"), "num"],
  ["Status", (r) => r.status],
];

function isoOrEmpty(local) {
  return local ? new Date(local).toISOString() : "";
}

export async function logsPage() {
  const tokens = (await get("/api/v1/tokens?page_size=500")).tokens;
  const filter = {
    token: el("select", { name: "token_id" }, el("option", { value: "" }, "all tokens"), tokens.map((t) => el("option", { value: t.id }, t.name))),
    model: el("input", { name: "model", placeholder: "any model" }),
    status: el("input", { name: "status", placeholder: "ok, rate_limit_exceeded, …" }),
    start: el("input", { name: "start_time", type: "datetime-local" }),
    end: el("input", { name: "end_time", type: "datetime-local" }),
    size: el("select", { name: "page_size" }, PAGE_SIZES.map((size) => el("option", { value: size, selected: size === "50" }, size))),
  };
  const results = el("div", { id: "log-results" });
  const pager = el("div");
  const status = el("div");
  const pages = [""];

  const params = () => ({
    token_id: filter.token.value,
    model: filter.model.value.trim(),
    status: filter.status.value.trim(),
    start_time: isoOrEmpty(filter.start.value),
    end_time: isoOrEmpty(filter.end.value),
  });

  async function show() {
    results.replaceChildren(el("p", { class: "note" }, "Loading…"));
    try {
      const reply = await get(`/api/v1/logs${query({ ...params(), page_size: filter.size.value, page_token: pages.at(-1) })}`);
      results.replaceChildren(table(COLUMNS, reply.logs, "No calls match: widen the filters, or make a call with one of your tokens."));
      const older = el("button", { type: "button", disabled: !reply.next_page_token }, "Older →");
      const first = el("button", { type: "button", disabled: pages.length === 1 }, "← Newest");
      older.addEventListener("click", () => pages.push(reply.next_page_token) && show());
      first.addEventListener("click", () => pages.splice(1) && show());
      pager.replaceChildren(first, " ", el("span", { class: "note" }, `page ${pages.length}`), " ", older);
    } catch (error) {
      results.replaceChildren(errorBox(error));
    }
  }

  async function exportCsv() {
    status.replaceChildren(el("p", { class: "note" }, "Preparing CSV…"));
    try {
      await download(`/api/v1/logs:export${query(params())}`, "tollgate-logs.csv");
      status.replaceChildren();
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  }

  const form = el(
    "form",
    { class: "panel", id: "log-filters" },
    el("label", {}, "Token", filter.token),
    el("label", {}, "Model", filter.model),
    el("label", {}, "Status", filter.status),
    el("label", {}, "From", filter.start),
    el("label", {}, "To", filter.end),
    el("label", {}, "Rows per page", filter.size),
    el("button", { type: "submit" }, "Apply filters"),
    " ",
    el("button", { type: "button", id: "export-csv", onclick: exportCsv }, "Export CSV"),
    status,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    pages.splice(1);
    show();
  });
  await show();
  return el("div", {}, el("h1", {}, "Logs"), form, results, pager);
}
