// CoreC dashboard: sign in, then show the pool, members, prices, exchanges, positions,
// trades and alerts, kept live by the API's WebSocket.
import "./style.css";
import {
  ApiError,
  accessToken,
  api,
  currentSession,
  ensureFresh,
  isAdmin,
  login,
  logout,
  onLoggedOut,
  onRefreshed,
  principal,
  refresh,
} from "./api.js";
import {
  ago,
  bps,
  dateTime,
  duration,
  esc,
  fullDateTime,
  isMissing,
  ms,
  pct,
  perUnit,
  price,
  qty,
  seconds,
  signClass,
  text,
  usd,
} from "./format.js";
import { NavChart } from "./navchart.js";
import { renderTable } from "./table.js";
import { LiveSocket } from "./ws.js";

const $ = (id) => document.getElementById(id);
const STREAMS = ["prices", "pool", "trades", "alerts", "system"];
const MAX_ALERTS = 100;
const MAX_TRADES = 20;

const state = {
  running: false,
  chart: null,
  socket: null,
  timers: [],
  alerts: new Map(), // alert_id -> row (Map keeps insertion order; we rebuild order on change)
  alertOrder: [], // newest first
  quotes: new Map(), // "market|symbol" -> consolidated quote
  trades: [],
  uptime: null, // {seconds, atMs}
  plugins: new Map(),
  mode: null,
  membersHidden: false,
  nodeTimeMs: null, // the latest node-clock time seen (events, as_of stamps): a replaying
  // node runs on the recording's clock, so the browser's Date.now() is not "now" there
};

// ---------------------------------------------------------------- small helpers

function debounce(fn, waitMs) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), waitMs);
  };
}

/** At most one call per `intervalMs`; the last call in a burst always runs. */
function throttle(fn, intervalMs) {
  let last = 0;
  let timer = null;
  return () => {
    if (timer) return;
    const wait = Math.max(0, last + intervalMs - Date.now());
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      fn();
    }, wait);
  };
}

/** Remember the node's clock from any timestamp it sent (UTC ns); moves the chart's "now". */
function noteNodeTime(tsNs) {
  const t = Number(tsNs) / 1e6;
  if (!Number.isFinite(t) || t <= 0) return;
  if (state.nodeTimeMs === null || t > state.nodeTimeMs) {
    state.nodeTimeMs = t;
    state.chart?.setNow(t);
  }
}

/** Stamp rows with the response's node-clock time, for "… ago" cells. */
function withAsOf(rows, asOfTsNs) {
  const asOfMs = Number(asOfTsNs) / 1e6;
  return Number.isFinite(asOfMs) && asOfMs > 0 ? rows.map((r) => ({ ...r, _asOfMs: asOfMs })) : rows;
}

/** A long id (UUIDv7: its start is a timestamp shared by neighbours): its end, in full on hover. */
function idCell(v) {
  if (isMissing(v)) return "–";
  const id = String(v);
  const short = id.length > 14 ? `…${id.slice(-12)}` : id;
  return `<span class="muted small mono" title="${esc(id)}">${esc(short)}</span>`;
}

function timeCell(v) {
  return `<span title="${esc(fullDateTime(v))}">${esc(dateTime(v))}</span>`;
}

function every(fn, intervalMs) {
  state.timers.push(setInterval(fn, intervalMs));
}

function itemsOf(data, ...keys) {
  if (Array.isArray(data)) return data;
  if (!data || typeof data !== "object") return [];
  for (const k of ["items", ...keys]) if (Array.isArray(data[k])) return data[k];
  return [];
}

/** Show (or clear, with null) a problem inside one card. */
function sectionError(sectionId, message) {
  const section = $(sectionId);
  if (!section) return;
  let p = section.querySelector(":scope > .section-error");
  if (!message) {
    if (p) p.remove();
    return;
  }
  if (!p) {
    p = document.createElement("p");
    p.className = "section-error";
    const head = section.querySelector(":scope > .card-head");
    if (head) head.after(p);
    else section.prepend(p);
  }
  p.textContent = message;
}

function describeError(err) {
  if (err instanceof ApiError) {
    if (err.status === 503) return `Not available right now: ${err.message}`;
    return err.message;
  }
  return "Cannot reach the CoreC node.";
}

let unreachable = false;
function noteReachability(ok) {
  if (ok === !unreachable) return;
  unreachable = !ok;
  const banner = $("global-error");
  banner.hidden = ok;
  banner.textContent = ok ? "" : "Cannot reach the CoreC node. Showing the last figures; retrying…";
}

/** Run a loader for one card; errors are shown in the card, never thrown. */
async function load(sectionId, loader) {
  try {
    await loader();
    sectionError(sectionId, null);
    noteReachability(true);
    $("last-refresh").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return; // signed out already
    if (!(err instanceof ApiError)) noteReachability(false);
    sectionError(sectionId, describeError(err));
    if (!(err instanceof ApiError)) console.warn("dashboard:", sectionId, err);
  }
}

function badge(textValue, cls) {
  return `<span class="badge ${cls}">${esc(textValue)}</span>`;
}

function sideBadge(side) {
  if (isMissing(side)) return "–";
  const s = String(side).toLowerCase();
  const cls = s === "long" || s === "buy" ? "pos-bg" : s === "short" || s === "sell" ? "neg-bg" : "neutral";
  return badge(side, cls);
}

function signedUsd(v) {
  return `<span class="${signClass(v)}">${usd(v, { signed: true })}</span>`;
}

// ---------------------------------------------------------------- sign-in

function showLogin(message) {
  stopDashboard();
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  const err = $("login-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("login-password").value = "";
  $("login-submit").disabled = false;
  // Nothing of the previous person's view stays in the page.
  for (const id of ["members-table", "positions-table", "trades-table", "alerts-feed"]) $(id).innerHTML = "";
  $("login-user").focus();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = $("login-user").value.trim();
  const password = $("login-password").value;
  const err = $("login-error");
  if (!user || !password) {
    err.hidden = false;
    err.textContent = "Please enter your user name and password.";
    return;
  }
  $("login-submit").disabled = true;
  err.hidden = true;
  try {
    await login(user, password);
    $("login-password").value = "";
    startDashboard();
  } catch (e) {
    err.hidden = false;
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      err.textContent = "Wrong user name or password.";
    } else if (e instanceof ApiError && (e.status === 429 || e.status === 503)) {
      err.textContent = `Too many attempts. ${e.message}`;
    } else if (e instanceof ApiError) {
      err.textContent = e.message;
    } else {
      err.textContent = "Cannot reach the CoreC node. Is it running?";
    }
  } finally {
    $("login-submit").disabled = false;
  }
});

$("logout-button").addEventListener("click", async () => {
  stopDashboard();
  await logout();
  showLogin("You are signed out.");
});

onLoggedOut(() => showLogin("Your session ended; please sign in again."));
onRefreshed(() => {
  /* the socket keeps its connection; a later 4401 reconnects it with the new token */
});

// ---------------------------------------------------------------- header: mode, status

function renderMode(mode) {
  state.mode = mode || null;
  const el = $("mode-badge");
  const m = String(mode || "unknown");
  el.className = `badge mode-${m}`;
  el.textContent = m === "unknown" ? "mode ?" : m;
  el.title = {
    normal: "Normal: trading freely",
    safe: "Safe: only orders that reduce exposure",
    emergency: "Emergency: trading halted, data and alerts keep running",
  }[m] || "Node mode";
  document.body.dataset.mode = m;
  if (mode && $("mode-select").dataset.touched !== "1") $("mode-select").value = mode;
}

async function loadMode() {
  const data = await api("/system/mode");
  renderMode(data?.mode ?? data?.current);
}

function pluginClass(p) {
  const st = String(p.state || "").toLowerCase();
  const health = String(p.status || "").toLowerCase();
  if (st === "failed" || p.error || /fail|unhealthy|error|down/.test(health)) return "bad";
  if (st !== "running" || /degrad|warn|stale/.test(health)) return "warn";
  return "ok";
}

function renderPlugins() {
  const chips = [...state.plugins.values()]
    .sort((a, b) => String(a.name).localeCompare(String(b.name)))
    .map((p) => {
      const title = [
        `state: ${p.state ?? "?"}`,
        p.status ? `health: ${p.status}` : "",
        p.error ? `error: ${p.error}` : "",
      ].filter(Boolean).join("\n");
      return `<span class="chip ${pluginClass(p)}" title="${esc(title)}">${esc(p.name)}</span>`;
    });
  $("plugins").innerHTML = chips.join("");
}

async function loadStatus() {
  const data = await api("/system/status");
  if (data?.mode) renderMode(data.mode);
  if (!isMissing(data?.uptime_s)) state.uptime = { seconds: Number(data.uptime_s), atMs: Date.now() };
  tickUptime();
  $("instance-id").textContent = data?.instance_id ? `node ${data.instance_id}` : "";
  state.plugins = new Map(itemsOf(data, "plugins").map((p) => [p.name, p]));
  renderPlugins();
}

function tickUptime() {
  if (!state.uptime) return;
  const s = state.uptime.seconds + (Date.now() - state.uptime.atMs) / 1000;
  $("uptime").textContent = duration(s);
}

// Admin mode switch: select + reason, then an explicit confirmation.
$("mode-select").addEventListener("change", () => {
  $("mode-select").dataset.touched = "1";
});
$("mode-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const mode = $("mode-select").value;
  const reason = $("mode-reason").value.trim();
  const msg = $("mode-message");
  if (!reason) {
    msg.textContent = "Please give a reason: it is recorded and sent to everyone.";
    $("mode-reason").focus();
    return;
  }
  if (mode === state.mode) {
    msg.textContent = `The node is already in ${mode} mode.`;
    return;
  }
  msg.textContent = "";
  $("mode-confirm-text").textContent = `Switch the node to ${mode.toUpperCase()}?`;
  $("mode-confirm").hidden = false;
  $("mode-change").hidden = true;
});
$("mode-confirm-no").addEventListener("click", () => {
  $("mode-confirm").hidden = true;
  $("mode-change").hidden = false;
});
$("mode-confirm-yes").addEventListener("click", async () => {
  const mode = $("mode-select").value;
  const reason = $("mode-reason").value.trim();
  const msg = $("mode-message");
  $("mode-confirm-yes").disabled = true;
  try {
    const data = await api("/system/mode", { method: "PUT", body: { mode, reason } });
    renderMode(data?.current ?? data?.mode ?? mode);
    msg.textContent = `Mode changed to ${data?.current ?? mode}.`;
    $("mode-reason").value = "";
    $("mode-select").dataset.touched = "";
  } catch (err) {
    msg.textContent = `Could not change the mode: ${describeError(err)}`;
  } finally {
    $("mode-confirm-yes").disabled = false;
    $("mode-confirm").hidden = true;
    $("mode-change").hidden = false;
  }
});

// ---------------------------------------------------------------- pool

function renderPool(p) {
  if (!p) return;
  $("pool-nav").textContent = usd(p.nav_usd);
  $("pool-nav-per-unit").textContent = perUnit(p.nav_per_unit);
  $("pool-units").textContent = qty(p.units, 4);
  $("pool-cash").textContent = usd(p.cash_usd);
  $("pool-allocated").textContent = usd(p.allocated_usd);
  const unrealized = $("pool-unrealized");
  unrealized.textContent = usd(p.unrealized_pnl_usd, { signed: true });
  unrealized.className = `value ${signClass(p.unrealized_pnl_usd)}`;
  $("pool-risk").textContent = pct(p.risk_per_trade, 2);
  $("pool-active-ratio").textContent = pct(p.active_ratio);
  const phase = $("pool-phase");
  phase.textContent = isMissing(p.phase) ? "" : `phase: ${p.phase}`;
  phase.hidden = isMissing(p.phase);
}

async function loadPool() {
  const data = await api("/pool");
  renderPool(data);
  // /pool carries no time: "now" is the node's clock as far as we know it.
  state.chart?.setLive(state.nodeTimeMs, data?.nav_usd, data?.nav_per_unit);
}

async function loadNavHistory() {
  const data = await api("/pool/nav-history", { query: { limit: 1000 } });
  const count = state.chart ? state.chart.setHistory(itemsOf(data)) : 0;
  $("nav-chart-empty").hidden = count > 0;
}

// ---------------------------------------------------------------- members

const MEMBER_COLUMNS = [
  { key: "member", label: "Member", fmt: (v) => `<strong>${text(v)}</strong>` },
  { key: "units", label: "Units", num: true, fmt: (v) => qty(v, 4) },
  { key: "equity_usd", label: "Worth now", num: true, fmt: (v) => usd(v) },
  { key: "contributed_usd", label: "Put in", num: true, fmt: (v) => usd(v) },
  { key: "withdrawn_usd", label: "Taken out", num: true, fmt: (v) => usd(v) },
  { key: "distributed_usd", label: "Paid out", num: true, fmt: (v) => usd(v) },
  { key: "pnl_usd", label: "Profit / loss", num: true, fmt: signedUsd },
  { key: "reinvest", label: "Reinvests", fmt: (v) => (v === true ? "yes" : v === false ? "no" : "–") },
  { key: "joined_ts_ns", label: "Joined", fmt: (v) => esc(dateTime(v)) },
];

async function loadMembers() {
  if (state.membersHidden) return;
  try {
    const data = await api("/members", { query: { limit: 1000 } });
    renderTable($("members-table"), itemsOf(data), MEMBER_COLUMNS, { empty: "No members yet." });
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) {
      state.membersHidden = true;
      $("members-section").hidden = true;
      return;
    }
    throw err;
  }
}

// ---------------------------------------------------------------- prices

function quoteKey(q) {
  return `${q.market ?? ""}|${q.symbol ?? q.pair ?? ""}`;
}

function venueCell(venues) {
  if (!Array.isArray(venues) || !venues.length) return "–";
  return venues
    .map((v) => {
      const age = isMissing(v.age_s) ? "" : ` · ${seconds(v.age_s)} old`;
      const title = `bid ${price(v.bid)} / ask ${price(v.ask)}${
        isMissing(v.spread_bps) ? "" : ` · spread ${bps(v.spread_bps)}`
      }${age}${v.stale ? " · STALE (left out of best prices)" : ""}`;
      return `<span class="venue${v.stale ? " stale" : ""}" title="${esc(title)}">${esc(v.exchange)} ${price(v.mid ?? v.last)}</span>`;
    })
    .join(" ");
}

function basisCell(basis) {
  if (!Array.isArray(basis) || !basis.length) return "–";
  return basis
    .map((b) => `<span class="venue" title="${esc(`spot ${price(b.spot_mid)} · futures ${price(b.futures_mid)}`)}">${esc(b.exchange)} <span class="${signClass(b.basis_bps)}">${bps(b.basis_bps)}</span></span>`)
    .join(" ");
}

const QUOTE_COLUMNS = [
  {
    key: ["symbol", "pair"],
    label: "Instrument",
    always: true,
    fmt: (v, q) => `<strong>${text(v)}</strong>${q.market ? ` <span class="tag">${esc(q.market)}</span>` : ""}`,
  },
  {
    key: "best_bid",
    label: "Best bid",
    num: true,
    fmt: (v, q) => `${price(v)}${q.best_bid_exchange ? ` <span class="muted small">${esc(q.best_bid_exchange)}</span>` : ""}`,
  },
  {
    key: "best_ask",
    label: "Best ask",
    num: true,
    fmt: (v, q) => `${price(v)}${q.best_ask_exchange ? ` <span class="muted small">${esc(q.best_ask_exchange)}</span>` : ""}`,
  },
  { key: "mid", label: "Mid", num: true, fmt: (v) => price(v) },
  { key: "spread_bps", label: "Spread", num: true, fmt: (v) => bps(v), cls: (v) => (Number(v) < 0 ? "neg" : "") },
  { key: "gap_bps", label: "Gap between exchanges", num: true, fmt: (v) => bps(v) },
  { key: "basis", label: "Futures basis", fmt: basisCell },
  { key: "venues", label: "Exchanges (mid)", fmt: venueCell },
];

let quotesFrame = 0;
const flashKeys = new Set();
function renderQuotes() {
  quotesFrame = 0;
  const rows = [...state.quotes.values()].sort(
    (a, b) =>
      String(a.pair ?? a.symbol).localeCompare(String(b.pair ?? b.symbol)) ||
      String(a.market).localeCompare(String(b.market)) ||
      String(a.symbol).localeCompare(String(b.symbol)),
  );
  renderTable($("prices-table"), rows, QUOTE_COLUMNS, {
    empty: "No prices yet.",
    rowAttrs: (q) => `data-key="${esc(quoteKey(q))}"${flashKeys.has(quoteKey(q)) ? ' class="flash"' : ""}`,
  });
  flashKeys.clear();
}

function scheduleQuotes() {
  if (!quotesFrame) quotesFrame = requestAnimationFrame(renderQuotes);
}

async function loadConsolidated() {
  const data = await api("/prices/consolidated");
  state.quotes = new Map(itemsOf(data, "quotes").map((q) => [quoteKey(q), q]));
  noteNodeTime(data?.as_of_ts_ns);
  if (data?.as_of_ts_ns) $("prices-asof").textContent = `as of ${dateTime(data.as_of_ts_ns)}`;
  renderQuotes();
}

const TICKER_COLUMNS = [
  { key: "exchange", label: "Exchange" },
  { key: "market", label: "Market" },
  { key: "symbol", label: "Symbol", fmt: (v) => `<strong>${text(v)}</strong>` },
  { key: "bid", label: "Bid", num: true, fmt: price },
  { key: "ask", label: "Ask", num: true, fmt: price },
  { key: "last", label: "Last", num: true, fmt: price },
  { key: "mid", label: "Mid", num: true, fmt: price },
  { key: "spread_bps", label: "Spread", num: true, fmt: bps },
  { key: ["exchange_ts_ns", "received_ts_ns"], label: "Time", fmt: (v) => `<span title="${esc(fullDateTime(v))}">${esc(dateTime(v))}</span>` },
];

async function loadTickers() {
  const data = await api("/prices");
  noteNodeTime(data?.as_of_ts_ns);
  const rows = [...itemsOf(data, "tickers")].sort(
    (a, b) =>
      String(a.symbol).localeCompare(String(b.symbol)) ||
      String(a.market).localeCompare(String(b.market)) ||
      String(a.exchange).localeCompare(String(b.exchange)),
  );
  renderTable($("tickers-table"), rows, TICKER_COLUMNS, { empty: "No tickers yet." });
}

// ---------------------------------------------------------------- exchanges

function breakerBadge(v) {
  const s = String(v ?? "unknown");
  const cls = s === "closed" ? "ok" : s === "open" ? "bad" : s === "half_open" ? "warn" : "neutral";
  const label = { closed: "OK (closed)", open: "OPEN: paused", half_open: "testing (half open)" }[s] || s;
  return `<span class="badge ${cls}" title="circuit breaker: ${esc(s)}">${esc(label)}</span>`;
}

function errorsCell(v) {
  if (!v || typeof v !== "object") return text(v);
  const entries = Object.entries(v).filter(([, n]) => Number(n) > 0);
  if (!entries.length) return '<span class="muted">none</span>';
  return entries.map(([k, n]) => `<span class="tag warn">${esc(k)}: ${esc(n)}</span>`).join(" ");
}

const EXCHANGE_COLUMNS = [
  { key: "exchange", label: "Exchange", fmt: (v) => `<strong>${text(v)}</strong>` },
  { key: "market", label: "Market" },
  { key: "breaker", label: "Connection", fmt: breakerBadge },
  {
    key: "last_success_ts_ns",
    label: "Last data",
    fmt: (v, r) => `<span title="${esc(fullDateTime(v))}">${esc(ago(v, r._asOfMs))}</span>`,
  },
  { key: "failed_polls", label: "Failed polls", num: true, cls: (v) => (Number(v) > 0 ? "neg" : "") },
  { key: "latency_p50_ms", label: "Latency p50", num: true, fmt: ms },
  { key: "latency_p95_ms", label: "Latency p95", num: true, fmt: ms },
  { key: "errors", label: "Errors", fmt: errorsCell },
];

async function loadExchanges() {
  const data = await api("/exchanges");
  noteNodeTime(data?.as_of_ts_ns);
  renderTable($("exchanges-table"), withAsOf(itemsOf(data), data?.as_of_ts_ns), EXCHANGE_COLUMNS, { empty: "No exchange configured." });
}

// ---------------------------------------------------------------- positions and trades

const POSITION_COLUMNS = [
  {
    key: "symbol",
    label: "Symbol",
    fmt: (v, p) => {
      const where = [p.exchange, p.market].filter((x) => !isMissing(x)).join(" · ");
      return `<strong>${text(v)}</strong>${where ? ` <span class="tag">${esc(where)}</span>` : ""}`;
    },
    cls: () => "nowrap",
  },
  { key: "side", label: "Side", fmt: sideBadge },
  { key: "strategy", label: "Strategy" },
  { key: ["quantity", "amount"], label: "Quantity", num: true, fmt: (v) => qty(v) },
  {
    key: "entry_price",
    label: "Entry",
    num: true,
    fmt: (v, p) => (isMissing(p.entry_fee_usd) ? price(v) : `<span title="${esc(`entry fee ${usd(p.entry_fee_usd)}`)}">${price(v)}</span>`),
  },
  {
    key: ["mark_price", "last_price"],
    label: "Now",
    num: true,
    fmt: (v, r) => (r.mark_ts_ns ? `<span title="${esc(`marked ${fullDateTime(r.mark_ts_ns)}`)}">${price(v)}</span>` : price(v)),
  },
  { key: ["stop_price", "stop_loss"], label: "Stop", num: true, fmt: price },
  { key: ["notional_usd", "amount_usd"], label: "Size", num: true, fmt: (v) => usd(v) },
  { key: "allocation_usd", label: "Set aside", num: true, fmt: (v) => usd(v) },
  { key: "unrealized_pnl_usd", label: "Open P/L", num: true, fmt: signedUsd },
  { key: ["opened_ts_ns", "ts_ns"], label: "Opened", fmt: timeCell, cls: () => "nowrap" },
  { key: ["trade_id", "position_id"], label: "Trade", fmt: idCell, cls: () => "nowrap" },
];
// Shown inside other cells (exchange and market by the symbol, fee and mark time as tooltips).
const POSITION_SKIP = new Set(["allocation_id", "mark_ts_ns", "exchange", "market", "entry_fee_usd"]);

async function loadPositions() {
  const data = await api("/positions", { query: { limit: 100 } });
  const rows = itemsOf(data, "positions");
  renderTable($("positions-table"), rows, POSITION_COLUMNS, {
    empty: "No open position.",
    extras: true,
    skip: POSITION_SKIP,
  });
  const total = Number(data?.total);
  $("positions-total").textContent = Number.isFinite(total) && total > rows.length ? `${rows.length} of ${total}` : "";
}

const TRADE_COLUMNS = [
  { key: ["closed_ts_ns", "ts_ns"], label: "Closed", fmt: timeCell, cls: () => "nowrap" },
  { key: "symbol", label: "Symbol", fmt: (v) => `<strong>${text(v)}</strong>` },
  { key: "side", label: "Side", fmt: sideBadge },
  { key: "exchange", label: "Exchange" },
  { key: "strategy", label: "Strategy" },
  { key: "quantity", label: "Quantity", num: true, fmt: (v) => qty(v) },
  { key: "entry_price", label: "Entry", num: true, fmt: price },
  { key: "exit_price", label: "Exit", num: true, fmt: price },
  { key: "fees_usd", label: "Fees", num: true, fmt: (v) => usd(v) },
  { key: "realized_pnl_usd", label: "Profit / loss", num: true, fmt: signedUsd },
  { key: "exit_reason", label: "Why closed", fmt: (v) => (isMissing(v) ? "–" : esc(String(v).replace(/_/g, " "))) },
  { key: "trade_id", label: "Trade", fmt: idCell, cls: () => "nowrap" },
];
const TRADE_SKIP = new Set(["allocation_id", "market", "opened_ts_ns"]);

function renderTrades() {
  const rows = state.trades.map((t) => Object.fromEntries(Object.entries(t).filter(([k]) => !TRADE_SKIP.has(k))));
  renderTable($("trades-table"), rows, TRADE_COLUMNS, {
    empty: "No trade closed yet.",
    extras: true,
    rowAttrs: (t) => `data-trade-id="${esc(t.trade_id ?? "")}"${t._new ? ' class="flash"' : ""}`,
  });
  for (const t of state.trades) delete t._new;
}

async function loadTrades() {
  const data = await api("/trades", { query: { limit: MAX_TRADES } });
  state.trades = itemsOf(data, "trades").slice(0, MAX_TRADES);
  renderTrades();
}

function addTrade(trade) {
  if (!trade) return;
  const id = trade.trade_id;
  state.trades = state.trades.filter((t) => id === undefined || t.trade_id !== id);
  state.trades.unshift({ ...trade, _new: true });
  state.trades = state.trades.slice(0, MAX_TRADES);
  renderTrades();
}

// ---------------------------------------------------------------- alerts

function renderAlerts() {
  const firingOnly = $("alerts-firing-only").checked;
  const admin = isAdmin();
  const rows = state.alertOrder
    .map((id) => state.alerts.get(id))
    .filter((a) => a && (!firingOnly || a.state === "firing"));
  $("alerts-empty").hidden = rows.length > 0;
  $("alerts-feed").innerHTML = rows
    .map((a) => {
      const sev = String(a.severity || "medium").toLowerCase();
      const st = String(a.state || "firing").toLowerCase();
      const acked = !isMissing(a.acked_by);
      const when = a.last_ts_ns ?? a.starts_ts_ns;
      const ack =
        admin && !acked && st === "firing"
          ? `<button type="button" class="ack-button small-button" data-ack="${esc(a.alert_id)}">Ack</button>`
          : "";
      const repeats = Number(a.occurrences) > 1 ? ` · ×${esc(a.occurrences)}` : "";
      return `<li class="alert-item sev-${esc(sev)} state-${esc(st)}${a._new ? " flash" : ""}" data-alert-id="${esc(a.alert_id)}">
        <div class="alert-top">
          <span class="badge sev sev-${esc(sev)}">${esc(sev)}</span>
          <strong class="alert-name">${esc(String(a.name ?? "alert").replace(/_/g, " "))}</strong>
          <span class="badge state ${st === "firing" ? "warn" : "neutral"}">${esc(st)}</span>
          ${ack}
        </div>
        <div class="alert-message">${esc(a.message ?? "")}</div>
        <div class="alert-meta muted small">
          <span title="${esc(fullDateTime(when))}">${esc(dateTime(when))}</span>${repeats}
          ${a.source ? ` · ${esc(a.source)}` : ""}
          ${acked ? ` · acknowledged by ${esc(a.acked_by)}` : ""}
          ${a.muted_by ? ` · muted (${esc(a.muted_by)})` : ""}
        </div>
      </li>`;
    })
    .join("");
  for (const a of state.alerts.values()) delete a._new;
}

async function loadAlerts() {
  const data = await api("/alerts", { query: { limit: 50 } });
  const items = itemsOf(data, "alerts");
  state.alerts = new Map(items.map((a) => [a.alert_id, a]));
  state.alertOrder = items.map((a) => a.alert_id);
  renderAlerts();
}

function upsertAlert(payload, tsNs) {
  if (!payload || isMissing(payload.alert_id)) return;
  const id = payload.alert_id;
  const previous = state.alerts.get(id) || {};
  const row = {
    ...previous,
    ...payload,
    last_ts_ns: payload.last_ts_ns ?? tsNs ?? previous.last_ts_ns,
    starts_ts_ns: previous.starts_ts_ns ?? payload.starts_ts_ns ?? tsNs,
    acked_by: payload.acked_by ?? previous.acked_by ?? null,
    _new: true,
  };
  state.alerts.set(id, row);
  state.alertOrder = [id, ...state.alertOrder.filter((x) => x !== id)];
  while (state.alertOrder.length > MAX_ALERTS) state.alerts.delete(state.alertOrder.pop());
  renderAlerts();
}

$("alerts-feed").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-ack]");
  if (!button) return;
  const id = button.dataset.ack;
  button.disabled = true;
  button.textContent = "…";
  try {
    await api(`/alerts/${encodeURIComponent(id)}/ack`, { method: "POST", body: {} });
    const a = state.alerts.get(id);
    if (a) a.acked_by = principal()?.user || "you";
    renderAlerts();
  } catch (err) {
    button.disabled = false;
    button.textContent = "Ack";
    sectionError("alerts-section", `Could not acknowledge: ${describeError(err)}`);
  }
});
$("alerts-firing-only").addEventListener("change", renderAlerts);

// ---------------------------------------------------------------- live updates

const refreshPositions = debounce(() => load("positions-section", loadPositions), 1000);
const refreshMembers = throttle(() => load("members-section", loadMembers), 15_000);
const refreshMembersSoon = debounce(() => load("members-section", loadMembers), 1000);
const refreshExchanges = debounce(() => load("exchanges-section", loadExchanges), 1000);
const refreshNavHistory = debounce(() => load("pool-section", loadNavHistory), 2000);

// pool_state may arrive many times a second: draw at most once per frame.
let poolFrame = 0;
function renderLivePool() {
  poolFrame = 0;
  const live = state.livePool;
  if (!live) return;
  renderPool(live.pool);
  state.chart?.setLive(live.tsMs, live.pool.nav_usd, live.pool.nav_per_unit);
}

function handleEvent(msg) {
  const type = msg.event_type;
  const p = msg.payload || {};
  const tsMs = Number(msg.ts_ns) / 1e6;
  noteNodeTime(msg.ts_ns);
  switch (type) {
    case "pool_state":
      state.livePool = { pool: p, tsMs };
      if (!poolFrame) poolFrame = requestAnimationFrame(renderLivePool);
      if (!state.membersHidden) refreshMembers();
      break;
    case "contribution_recorded":
    case "withdrawal_recorded":
    case "withdrawal_queued":
    case "withdrawal_cancelled":
    case "distribution_recorded":
      refreshMembersSoon();
      break;
    case "day_close":
    case "daily_settlement":
    case "phase_changed":
      refreshNavHistory();
      break;
    case "consolidated_quote": {
      const key = quoteKey(p);
      state.quotes.set(key, p);
      flashKeys.add(key);
      if (p.as_of_ts_ns) $("prices-asof").textContent = `as of ${dateTime(p.as_of_ts_ns)}`;
      scheduleQuotes();
      break;
    }
    case "trade_closed":
      addTrade(p);
      refreshPositions();
      break;
    case "position_opened":
    case "allocation_released":
      refreshPositions();
      break;
    case "alert_recorded":
      upsertAlert(p, msg.ts_ns);
      break;
    case "alert_expired": {
      const a = state.alerts.get(p.alert_id);
      if (a) {
        a.state = "expired";
        a.ends_ts_ns = p.ends_ts_ns;
        renderAlerts();
      }
      break;
    }
    case "alert_acknowledged": {
      const a = state.alerts.get(p.alert_id);
      if (a) {
        a.acked_by = p.by ?? p.acked_by ?? "someone";
        renderAlerts();
      }
      break;
    }
    case "mode_changed":
      renderMode(p.current ?? p.mode);
      break;
    case "plugin_state_changed":
      if (p.plugin) {
        const old = state.plugins.get(p.plugin) || { name: p.plugin };
        state.plugins.set(p.plugin, { ...old, state: p.state, error: p.error ?? null });
        renderPlugins();
      }
      break;
    case "breaker_state_changed":
      refreshExchanges();
      break;
    default:
      break;
  }
}

function renderWsStatus(status, detail) {
  const el = $("ws-status");
  const labels = { live: "live", connecting: "connecting…", offline: "disconnected", stopped: "offline" };
  el.textContent = labels[status] || status;
  el.className = `ws-status ws-${status === "live" ? "live" : status === "connecting" ? "connecting" : "off"}`;
  el.dataset.state = status;
  el.title = detail ? `Live updates: ${detail}` : status === "live" ? "Live updates on" : "Live updates off";
}

// ---------------------------------------------------------------- lifecycle

function loadAll() {
  return Promise.all([
    load("pool-section", loadPool),
    load("pool-section", loadNavHistory),
    load("members-section", loadMembers),
    load("prices-section", loadConsolidated),
    load("prices-section", loadTickers),
    load("exchanges-section", loadExchanges),
    load("positions-section", loadPositions),
    load("trades-section", loadTrades),
    load("alerts-section", loadAlerts),
    load("status-section", loadStatus),
    load("status-section", loadMode),
  ]);
}

function startDashboard() {
  stopDashboard();
  state.running = true;
  const who = principal();
  $("whoami").textContent = who
    ? `${who.user} · ${who.role}${who.member && who.member !== who.user ? ` (member ${who.member})` : ""}`
    : "";
  $("mode-form").hidden = !isAdmin();
  state.membersHidden = who?.role === "viewer";
  $("members-section").hidden = state.membersHidden;
  $("login-view").hidden = true;
  $("app-view").hidden = false;

  if (!state.chart) state.chart = new NavChart($("nav-chart"));
  loadAll();

  state.socket = new LiveSocket({
    getToken: accessToken,
    channels: STREAMS,
    onEvent: handleEvent,
    onStatus: renderWsStatus,
    onLive: (reconnect) => {
      if (reconnect) loadAll(); // events were missed while we were away
    },
    onAuthFailed: () => refresh(),
  });
  state.socket.start();

  every(tickUptime, 1000);
  // Things without events of their own, and a safety net for the rest.
  every(() => {
    load("status-section", loadStatus);
    load("exchanges-section", loadExchanges);
    load("prices-section", loadTickers);
    load("positions-section", loadPositions);
  }, 30_000);
  every(() => {
    if ($("ws-status").dataset.state !== "live") loadAll(); // polling while the socket is down
  }, 20_000);
  every(() => {
    load("pool-section", loadNavHistory);
    load("members-section", loadMembers);
  }, 300_000);
}

function stopDashboard() {
  state.running = false;
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  if (state.socket) {
    state.socket.stop();
    state.socket = null;
  }
}

async function boot() {
  renderWsStatus("stopped");
  if (currentSession() && (await ensureFresh()) && currentSession()) {
    startDashboard();
  } else {
    showLogin();
  }
}

boot();
