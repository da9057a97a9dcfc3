// Spend per day split by model: stacked bars drawn by uPlot (vendored from npm), with a legend whose values
// follow the cursor. Every amount shown is formatted from integer micros; floats only place the bars.
import uPlot from "/console/vendor/uPlot.esm.js";
import { el, usd } from "/console/format.js";

const COLOURS = ["#2f6fde", "#e07b28", "#2a9d5b", "#9b4dca", "#c9384a", "#6b7785"];
const WIDTH = 760;
const HEIGHT = 260;

function dollars(value) {
  return `$${value.toFixed(6).replace(/\.?0+$/, "")}`;
}

// micros[model][day] as BigInt, from buckets [{day, model, cost_micros}].
function perModelAndDay(buckets, models, days) {
  const column = new Map(days.map((day, index) => [day, index]));
  const micros = models.map(() => days.map(() => 0n));
  for (const bucket of buckets) {
    const index = column.get(bucket.day);
    if (index !== undefined) micros[models.indexOf(bucket.model)][index] += BigInt(String(bucket.cost_micros));
  }
  return micros;
}

// uPlot draws series in order, each over the one before: model k's bar is the sum of models k…n-1, so
// every model shows as its own segment of one stacked bar, the first model on top. A day without spend
// is null, so no empty bar is drawn.
function stacked(micros, days) {
  return micros.map((_, k) =>
    days.map((_, day) => micros.slice(k).reduce((sum, row) => sum + Number(row[day]), 0) / 1e6 || null),
  );
}

function options(models, micros, days) {
  const bars = uPlot.paths.bars({ size: [0.7, 40] });
  const totals = micros.map((row) => row.reduce((sum, value) => sum + value, 0n));
  return {
    width: WIDTH,
    height: HEIGHT,
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: {
      x: { time: false, range: [-0.5, days.length - 0.5] },
      y: { range: (_, __, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    axes: [
      { incrs: [1, 2, 5, 7, 14], space: 40, values: (_, splits) => splits.map((index) => days[index]?.slice(5) ?? "") },
      { size: 80, values: (_, splits) => splits.map(dollars) },
    ],
    series: [
      { label: "Day (UTC)", value: (_, index) => (index == null ? `last ${days.length} days` : days[index]) },
      ...models.map((model, k) => ({
        label: model,
        stroke: COLOURS[k % COLOURS.length],
        fill: COLOURS[k % COLOURS.length],
        width: 1,
        paths: bars,
        points: { show: false },
        value: (_, __, ___, index) => usd(index == null ? totals[k] : micros[k][index]),
      })),
    ],
  };
}

// buckets: [{day, model, cost_micros}], days: ["YYYY-MM-DD", …] oldest first.
export function spendChart(buckets, days) {
  const models = [...new Set(buckets.map((bucket) => bucket.model))].sort();
  const box = el("div", { class: "chart" });
  if (!models.length) {
    box.append(el("p", { class: "note" }, `No spend in the last ${days.length} days yet: make a call with one of your tokens.`));
    return box;
  }
  const micros = perModelAndDay(buckets, models, days);
  new uPlot(options(models, micros, days), [days.map((_, index) => index), ...stacked(micros, days)], box);
  return box;
}
