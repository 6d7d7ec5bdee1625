// A small table renderer that is tolerant of the API's exact field names: a column is
// shown when at least one row has one of its keys, and (optionally) fields we do not
// know yet are appended as plain columns so nothing the API sends is hidden.
import { esc, text } from "./format.js";

/**
 * @typedef {object} Column
 * @property {string|string[]} key   field name, or alternatives (first present wins)
 * @property {string} label
 * @property {(value: any, row: object) => string} [fmt]  HTML for the cell (escaped!)
 * @property {(value: any, row: object) => string} [cls]  extra class for the cell
 * @property {boolean} [num]  right-aligned number column
 * @property {boolean} [always]  show even when no row has the field
 */

const SKIP_EXTRA = new Set(["fingerprint", "labels", "details_json", "TYPE", "type"]);

function keysOf(column) {
  return Array.isArray(column.key) ? column.key : [column.key];
}

export function pick(row, column) {
  for (const k of keysOf(column)) {
    if (row && row[k] !== undefined) return row[k];
  }
  return undefined;
}

/**
 * Render `rows` into `table` (thead + tbody).
 * @param {HTMLTableElement} table
 * @param {object[]} rows
 * @param {Column[]} columns
 * @param {{empty?: string, extras?: boolean, skip?: Set<string>,
 *          rowAttrs?: (row: object) => string}} [options]  skip: fields never shown as extras
 */
export function renderTable(table, rows, columns, options = {}) {
  const list = Array.isArray(rows) ? rows : [];
  let shown = columns.filter((c) => c.always || list.some((r) => pick(r, c) !== undefined));

  if (options.extras && list.length) {
    const known = new Set(columns.flatMap(keysOf));
    const extra = [];
    for (const row of list) {
      for (const [k, v] of Object.entries(row)) {
        if (known.has(k) || SKIP_EXTRA.has(k) || options.skip?.has(k)) continue;
        if (k.startsWith("_") || extra.includes(k)) continue;
        if (v !== null && typeof v === "object") continue;
        extra.push(k);
      }
    }
    shown = shown.concat(extra.map((k) => ({ key: k, label: k.replace(/_/g, " ") })));
  }
  if (!shown.length) shown = columns.slice(0, 1);

  const head = shown
    .map((c) => `<th scope="col" class="${c.num ? "num" : ""}">${esc(c.label)}</th>`)
    .join("");
  let body;
  if (!list.length) {
    body = `<tr class="empty-row"><td colspan="${shown.length}">${esc(options.empty || "Nothing to show.")}</td></tr>`;
  } else {
    body = list
      .map((row) => {
        const attrs = options.rowAttrs ? options.rowAttrs(row) : "";
        const cells = shown
          .map((c) => {
            const v = pick(row, c);
            const html = c.fmt ? c.fmt(v, row) : text(v);
            const cls = [c.num ? "num" : "", c.cls ? c.cls(v, row) : ""].filter(Boolean).join(" ");
            return `<td${cls ? ` class="${cls}"` : ""} data-label="${esc(c.label)}">${html}</td>`;
          })
          .join("");
        return `<tr ${attrs}>${cells}</tr>`;
      })
      .join("");
  }
  table.innerHTML = `<thead><tr>${head}</tr></thead><tbody>${body}</tbody>`;
}
