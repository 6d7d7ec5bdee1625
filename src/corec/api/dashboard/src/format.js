// Display helpers. The API sends money and quantities as decimal strings; they are
// turned into numbers here ONLY to format them for a person (never for arithmetic).

export function esc(value) {
  return String(value ?? "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

export function isMissing(value) {
  return value === null || value === undefined || value === "";
}

function num(value) {
  if (isMissing(value)) return NaN;
  return typeof value === "number" ? value : Number(value);
}

const DASH = "–";

export function usd(value, { signed = false } = {}) {
  const n = num(value);
  if (!Number.isFinite(n)) return isMissing(value) ? DASH : esc(value);
  const digits = Math.abs(n) < 1 && n !== 0 ? 4 : 2;
  const text = n.toLocaleString(undefined, {
    style: "currency",
    currency: "USD",
    minimumFractionDigits: 2,
    maximumFractionDigits: digits,
  });
  return signed && n > 0 ? `+${text}` : text;
}

/** NAV per unit: a few more decimals than money (1.052345 → $1.0523). */
export function perUnit(value) {
  const n = num(value);
  if (!Number.isFinite(n)) return isMissing(value) ? DASH : esc(value);
  return n.toLocaleString(undefined, {
    style: "currency", currency: "USD", minimumFractionDigits: 4, maximumFractionDigits: 6,
  });
}

/** A price: more decimals for small prices, fewer for large ones. */
export function price(value) {
  const n = num(value);
  if (!Number.isFinite(n)) return isMissing(value) ? DASH : esc(value);
  const abs = Math.abs(n);
  let digits = 2;
  if (abs < 1) digits = 6;
  else if (abs < 100) digits = 4;
  return n.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: digits });
}

/** A quantity or unit count: up to 8 decimals, trailing zeros dropped. */
export function qty(value, maxDigits = 8) {
  const n = num(value);
  if (!Number.isFinite(n)) return isMissing(value) ? DASH : esc(value);
  return n.toLocaleString(undefined, { maximumFractionDigits: maxDigits });
}

export function bps(value) {
  const n = num(value);
  if (!Number.isFinite(n)) return isMissing(value) ? DASH : esc(value);
  return `${n.toLocaleString(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 })} bps`;
}

/** A ratio (0.25) as a percentage (25 %). */
export function pct(value, digits = 1) {
  const n = num(value);
  if (!Number.isFinite(n)) return isMissing(value) ? DASH : esc(value);
  return `${(n * 100).toLocaleString(undefined, { maximumFractionDigits: digits })} %`;
}

export function ms(value) {
  const n = num(value);
  if (!Number.isFinite(n)) return DASH;
  return `${n.toLocaleString(undefined, { maximumFractionDigits: 0 })} ms`;
}

/** Sign of a decimal string, for colouring (no arithmetic). */
export function signClass(value) {
  const n = num(value);
  if (!Number.isFinite(n) || n === 0) return "";
  return n > 0 ? "pos" : "neg";
}

/** ns since the epoch (int, maybe a little above 2^53, or a string) → Date. */
export function nsToDate(tsNs) {
  const n = num(tsNs);
  if (!Number.isFinite(n) || n <= 0) return null;
  return new Date(n / 1e6);
}

export function dateTime(tsNs) {
  const d = nsToDate(tsNs);
  if (!d) return DASH;
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : d.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit",
      });
}

export function fullDateTime(tsNs) {
  const d = nsToDate(tsNs);
  return d ? d.toLocaleString() : "";
}

/** "3 min ago" from a Date or ns timestamp, relative to `nowMs` (the node's clock when
 * known: a replaying node's "now" is the recording's time, not the browser's). */
export function ago(tsNs, nowMs) {
  const d = tsNs instanceof Date ? tsNs : nsToDate(tsNs);
  if (!d) return DASH;
  const now = Number.isFinite(nowMs) ? nowMs : Date.now();
  const s = Math.round((now - d.getTime()) / 1000);
  if (s < 0) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function duration(seconds) {
  const n = num(seconds);
  if (!Number.isFinite(n) || n < 0) return DASH;
  let s = Math.floor(n);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s} s`;
  return `${s} s`;
}

export function seconds(value) {
  const n = num(value);
  if (!Number.isFinite(n)) return DASH;
  return n < 60 ? `${n.toLocaleString(undefined, { maximumFractionDigits: 1 })} s` : duration(n);
}

export function text(value) {
  if (isMissing(value)) return DASH;
  if (typeof value === "object") return esc(JSON.stringify(value));
  return esc(value);
}
