// Home: balance, held and available; spend today and this month; spend per day by model; most used tokens;
// the money put in and taken back; changing the password.
import { get, query } from "/console/api.js";
import { spendChart } from "/console/chart.js";
import { card, count, el, table, usd, when } from "/console/format.js";
import { changePasswordForm } from "/console/password.js";

const DAYS = 30;
const LEDGER_ROWS = 20;

// Usage totals are pre-aggregated per UTC day, so "today" and "this month" are UTC periods: exact, not estimated.
function utcStart(dayOfMonth) {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), dayOfMonth ?? now.getUTCDate()));
}

function utcDays(count) {
  const days = [];
  const today = new Date();
  for (let back = count - 1; back >= 0; back -= 1) {
    days.push(new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - back)).toISOString().slice(0, 10));
  }
  return days;
}

async function spendSince(start) {
  const reply = await get(`/api/v1/usage${query({ group_by: "USAGE_GROUPING_MODEL", start_time: start.toISOString() })}`);
  return reply.buckets.reduce((sum, bucket) => sum + BigInt(String(bucket.cost_micros)), 0n);
}

export async function homePage() {
  const today = utcStart();
  const month = utcStart(1);
  const days = utcDays(DAYS);
  const [account, spentToday, spentMonth, daily, byToken, tokens, ledger] = await Promise.all([
    get("/api/v1/account"),
    spendSince(today),
    spendSince(month),
    get(`/api/v1/usage${query({ group_by: "USAGE_GROUPING_DAY_AND_MODEL", start_time: `${days[0]}T00:00:00Z` })}`),
    get(`/api/v1/usage${query({ group_by: "USAGE_GROUPING_TOKEN", start_time: `${days[0]}T00:00:00Z` })}`),
    get("/api/v1/tokens?page_size=500"),
    get(`/api/v1/ledger${query({ page_size: LEDGER_ROWS })}`),
  ]);
  const names = new Map(tokens.tokens.map((token) => [token.id, token.name]));
  const busiest = [...byToken.buckets].sort((a, b) => Number(b.requests) - Number(a.requests)).slice(0, 5);
  return el(
    "div",
    {},
    el("h1", {}, `Welcome, ${account.name}`),
    el(
      "div",
      { class: "cards" },
      card("Balance", usd(account.balance_micros), "balance"),
      card("Held by running calls", usd(account.held_micros), "held"),
      card("Available", usd(account.available_micros), "available"),
      card("Spent today (UTC)", usd(spentToday), "spent-today"),
      card("Spent this month (UTC)", usd(spentMonth), "spent-month"),
    ),
    el("h2", {}, `Spend per day (UTC), last ${DAYS} days`),
    spendChart(daily.buckets, days),
    el("h2", {}, "Most used tokens (30 days)"),
    el(
      "div",
      { id: "top-tokens" },
      table(
        [
          ["Token", (row) => names.get(row.token_id) ?? `${row.token_id} (deleted)`],
          ["Requests", (row) => count(row.requests), "num"],
          ["Spent", (row) => usd(row.cost_micros), "num"],
        ],
        busiest,
        "No calls yet: create a token on the Tokens page and point your OpenAI SDK at this server.",
      ),
    ),
    el("h2", {}, `Credits and debits (latest ${LEDGER_ROWS})`),
    el(
      "div",
      { id: "ledger" },
      table(
        [
          ["When", (entry) => when(entry.create_time)],
          ["Kind", (entry) => entry.kind],
          ["Amount", (entry) => usd(entry.amount_micros), "num"],
          ["Reason", (entry) => entry.reason],
        ],
        ledger.entries,
        "No credits yet: the operator adds money to the balance.",
      ),
    ),
    el("h2", {}, "Password"),
    changePasswordForm(),
  );
}
