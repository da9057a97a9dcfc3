// A stacked bar chart of spend per day split by model, drawn as SVG elements (no inline code, no HTML).
import { el, usd } from "/console/format.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 720;
const HEIGHT = 220;
const PAD = { left: 80, right: 10, top: 10, bottom: 30 };

function shape(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// buckets: [{day, model, cost_micros}], days: ["YYYY-MM-DD", …] oldest first.
export function spendChart(buckets, days) {
  const models = [...new Set(buckets.map((bucket) => bucket.model))].sort();
  const perDay = new Map(days.map((day) => [day, new Map()]));
  for (const bucket of buckets) perDay.get(bucket.day)?.set(bucket.model, Number(bucket.cost_micros));
  const totals = days.map((day) => [...perDay.get(day).values()].reduce((a, b) => a + b, 0));
  const top = Math.max(1, ...totals);
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const step = plotWidth / days.length;
  const svg = shape("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, role: "img" });
  svg.append(shape("title", {}, "Spend per day by model"));
  svg.append(shape("line", { class: "axis", x1: PAD.left, y1: PAD.top + plotHeight, x2: WIDTH - PAD.right, y2: PAD.top + plotHeight }));
  if (models.length) {
    svg.append(shape("text", { class: "tick", x: PAD.left - 4, y: PAD.top + 8, "text-anchor": "end" }, usd(top)));
    svg.append(shape("text", { class: "tick", x: PAD.left - 4, y: PAD.top + plotHeight, "text-anchor": "end" }, "$0"));
  }
  days.forEach((day, index) => {
    let y = PAD.top + plotHeight;
    const x = PAD.left + index * step + step * 0.15;
    models.forEach((model, colour) => {
      const cost = perDay.get(day).get(model) || 0;
      if (!cost) return;
      const height = Math.max(1, (cost / top) * plotHeight);
      y -= height;
      const bar = shape("rect", { class: `bar-${colour % 6}`, x, y, width: step * 0.7, height });
      bar.append(shape("title", {}, `${day} ${model}: ${usd(cost)}`));
      svg.append(bar);
    });
    if (index % Math.ceil(days.length / 8) === 0) {
      svg.append(shape("text", { class: "tick", x: x + step * 0.35, y: HEIGHT - 10, "text-anchor": "middle" }, day.slice(5)));
    }
  });
  const legend = el(
    "div",
    { class: "legend" },
    models.map((model, colour) => el("span", {}, el("span", { class: `swatch swatch-${colour % 6}` }), model)),
  );
  return el("div", { class: "chart" }, svg, models.length ? legend : el("p", { class: "note" }, "No spend in the last 30 days yet: make a call with one of your tokens."));
}
