// Models & pricing: each model's context window and prices, upstream and after discounts.
import { get } from "/console/api.js";
import { count, el, table } from "/console/format.js";

const price = (text) => (text ? `$${text}` : "—");

export async function pricingPage() {
  const reply = await get("/api/v1/pricing");
  return el(
    "div",
    {},
    el("h1", {}, "Models & pricing"),
    el("p", { class: "note" }, `USD per million tokens. Site discount ×${reply.site_discount}, your discount ×${reply.account_discount || "1"}.`),
    table(
      [
        ["Model", (row) => row.model],
        ["Context window", (row) => count(row.context_window), "num"],
        ["Input (upstream → yours)", (row) => `${price(row.upstream.input_per_mtok)} → ${price(row.discounted.input_per_mtok)}`, "num"],
        ["Cached input", (row) => `${price(row.upstream.cached_input_per_mtok)} → ${price(row.discounted.cached_input_per_mtok)}`, "num"],
        ["Cache write", (row) => `${price(row.upstream.cache_write_per_mtok)} → ${price(row.discounted.cache_write_per_mtok)}`, "num"],
        ["Output", (row) => `${price(row.upstream.output_per_mtok)} → ${price(row.discounted.output_per_mtok)}`, "num"],
      ],
      reply.prices,
      "No model has a price: the operator sets prices in the configuration ([models.\"id\"]).",
    ),
  );
}
