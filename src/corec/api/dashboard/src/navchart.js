// The pool's value over time: NAV (left axis) and NAV per unit (right axis), one point
// per daily settlement plus a "now" point kept up to date from pool_state events.
// Values are converted with Number() for drawing only.
import {
  Chart,
  Filler,
  Legend,
  LineController,
  LineElement,
  LinearScale,
  PointElement,
  Tooltip,
} from "chart.js";

Chart.register(LineController, LineElement, PointElement, LinearScale, Tooltip, Legend, Filler);

const DAY_MS = 86_400_000;

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function pointTime(item) {
  const cutoff = Number(item.cutoff_ts_ns);
  if (Number.isFinite(cutoff) && cutoff > 0) return cutoff / 1e6;
  if (item.date) {
    const t = Date.parse(`${item.date}T00:00:00Z`);
    if (Number.isFinite(t)) return t + DAY_MS; // the day closes at the next midnight
  }
  return NaN;
}

/** A tick label fitting the time the chart spans. */
function tickLabel(value, span, multiYear) {
  const d = new Date(value);
  if (span < DAY_MS) return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  if (span < 7 * DAY_MS) {
    return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }
  return d.toLocaleDateString(undefined, { month: "short", day: "numeric", ...(multiYear ? { year: "numeric" } : {}) });
}

export class NavChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.history = []; // [{x, nav, perUnit}], oldest first
    this.live = null;
    const navColour = cssVar("--accent", "#2563eb");
    const unitColour = cssVar("--accent-2", "#d97706");
    const grid = cssVar("--grid", "rgba(128,128,128,0.15)");
    const textColour = cssVar("--muted", "#6b7280");
    const usdFmt = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", maximumFractionDigits: 0 });
    const unitFmt = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", maximumFractionDigits: 4 });
    const isLive = (ctx) => this.live !== null && ctx.dataIndex === ctx.dataset.data.length - 1;

    this.chart = new Chart(canvas, {
      type: "line",
      data: {
        datasets: [
          {
            label: "Pool value (NAV)",
            data: [],
            parsing: false,
            yAxisID: "yNav",
            borderColor: navColour,
            backgroundColor: navColour + "22",
            fill: "origin",
            tension: 0.2,
            borderWidth: 2,
            pointRadius: (ctx) => (isLive(ctx) ? 5 : 2),
            pointBackgroundColor: navColour,
          },
          {
            label: "Value per unit",
            data: [],
            parsing: false,
            yAxisID: "yUnit",
            borderColor: unitColour,
            backgroundColor: unitColour,
            borderDash: [5, 4],
            tension: 0.2,
            borderWidth: 2,
            pointRadius: (ctx) => (isLive(ctx) ? 5 : 2),
            pointBackgroundColor: unitColour,
          },
        ],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { labels: { color: textColour, usePointStyle: true, boxHeight: 6 } },
          tooltip: {
            callbacks: {
              title: (items) => {
                if (!items.length) return "";
                const { dataIndex, dataset } = items[0];
                const last = this.live !== null && dataIndex === dataset.data.length - 1;
                const when = new Date(items[0].parsed.x);
                return last ? `Now (${when.toLocaleString()})` : `Day closed ${when.toLocaleString()}`;
              },
              label: (item) =>
                item.datasetIndex === 0
                  ? `NAV: ${usdFmt.format(item.parsed.y)}`
                  : `Per unit: ${unitFmt.format(item.parsed.y)}`,
            },
          },
        },
        scales: {
          x: {
            type: "linear",
            grid: { color: grid },
            ticks: {
              color: textColour,
              maxRotation: 0,
              autoSkip: true,
              maxTicksLimit: 8,
              callback: (value) => {
                const points = this.points();
                const multiYear =
                  points.length > 1 &&
                  new Date(points[0].x).getFullYear() !== new Date(points[points.length - 1].x).getFullYear();
                return tickLabel(value, this.span(), multiYear);
              },
            },
          },
          yNav: {
            type: "linear",
            position: "left",
            grid: { color: grid },
            ticks: { color: textColour, callback: (v) => usdFmt.format(v) },
          },
          yUnit: {
            type: "linear",
            position: "right",
            grid: { drawOnChartArea: false },
            ticks: { color: textColour, callback: (v) => unitFmt.format(v) },
          },
        },
      },
    });
  }

  span() {
    const points = this.points();
    return points.length > 1 ? points[points.length - 1].x - points[0].x : 0;
  }

  /** History plus "now": at the node time last seen, never before the last settled
   * day; while the node's time is unknown, at the last settled day (or the browser's
   * clock when nothing settled yet). */
  points() {
    if (!this.live) return this.history;
    const lastDay = this.history.length ? this.history[this.history.length - 1].x : null;
    let x = this.live.x ?? lastDay ?? Date.now();
    if (lastDay !== null && x < lastDay) x = lastDay;
    return [...this.history, { ...this.live, x }];
  }

  /** Settlements as the API returns them (newest first). */
  setHistory(items) {
    this.history = (items || [])
      .map((item) => ({ x: pointTime(item), nav: Number(item.nav_usd), perUnit: Number(item.nav_per_unit) }))
      .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.nav))
      .sort((a, b) => a.x - b.x);
    this.redraw();
    return this.history.length;
  }

  /**
   * The pool right now (REST /pool or a pool_state event) at `timeMs` on the node's
   * clock; null when unknown (REST): the previous "now", else the last settled day
   * (the browser's clock is not the node's when the node replays a recording).
   */
  setLive(timeMs, navUsd, navPerUnit) {
    const nav = Number(navUsd);
    const perUnit = Number(navPerUnit);
    if (!Number.isFinite(nav)) return;
    const t = timeMs === null || timeMs === undefined ? NaN : Number(timeMs);
    const x = Number.isFinite(t) ? t : (this.live?.x ?? null);
    this.live = { x, nav, perUnit };
    this.redraw();
  }

  /** The node's clock moved on (a later event or as_of stamp): "now" follows it. */
  setNow(timeMs) {
    if (!this.live || !Number.isFinite(timeMs)) return;
    if (this.live.x !== null && timeMs <= this.live.x) return;
    this.live = { ...this.live, x: timeMs };
    this.redraw();
  }

  redraw() {
    const points = this.points();
    this.canvas.dataset.points = String(points.length); // for tests and curious people
    this.chart.data.datasets[0].data = points.map((p) => ({ x: p.x, y: p.nav }));
    const x = this.chart.options.scales.x;
    x.min = points.length ? points[0].x : undefined;
    x.max = points.length > 1 ? points[points.length - 1].x : undefined;
    this.chart.data.datasets[1].data = points
      .filter((p) => Number.isFinite(p.perUnit))
      .map((p) => ({ x: p.x, y: p.perUnit }));
    this.chart.update("none");
  }

  destroy() {
    this.chart.destroy();
  }
}
