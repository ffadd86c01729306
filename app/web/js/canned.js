// Canned responses in the composer: typing `/` (at the start or after a space) opens a
// list filtered by what follows; ↑/↓ move, Enter or Tab insert, Esc closes.

import { h } from "./dom.js";
import { t } from "./i18n.js";
import { listPicker } from "./picker.js";

const TRIGGER = /(^|\s)\/([^\s/]*)$/;
const MAX_SHOWN = 8;

/** Rank like Chatwoot: short-code prefix, then short-code substring, then text. */
export function rankCanned(items, query) {
  const q = query.toLocaleLowerCase();
  const scored = [];
  for (const item of items) {
    const code = (item.short_code || "").toLocaleLowerCase();
    const content = (item.content || "").toLocaleLowerCase();
    const score = code.startsWith(q) ? 0 : code.includes(q) ? 1 : content.includes(q) ? 2 : -1;
    if (score >= 0) scored.push([score, code, item]);
  }
  scored.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
  return scored.slice(0, MAX_SHOWN).map((x) => x[2]);
}

/**
 * Attach the picker to `textarea`. Returns {el, handleKey(event) → true when it used the
 * key, update()}; call update() on input and handleKey() first in the keydown handler.
 */
export function cannedPicker(textarea, api) {
  let items = null;
  let loading = null;
  const el = h("ul", { class: "canned", id: "canned-list", role: "listbox", "aria-label": t("canned.label"), hidden: true });
  textarea.setAttribute("aria-controls", "canned-list");
  textarea.setAttribute("aria-autocomplete", "list");
  textarea.setAttribute("aria-expanded", "false");
  const picker = listPicker(textarea, {
    list: el,
    trigger: TRIGGER,
    optionId: (item) => `canned-${item.id}`,
    optionClass: "canned-item",
    optionContent: (item) => [h("span", { class: "canned-code" }, `/${item.short_code}`), " ",
      h("span", { class: "canned-text", dir: "auto" }, item.content)],
    emptyText: (query) => t("canned.none", { q: query }),
    insertText: (item) => item.content,
  });

  async function load() {
    if (items) return items;
    loading ||= api.get("/canned_responses").then((list) => { items = list; return list; }).catch(() => { loading = null; return []; });
    return loading;
  }

  async function update() {
    const q = picker.typedQuery();
    if (q === null) return picker.close();
    const list = await load();
    if (picker.typedQuery() !== q) return undefined;  // typed on while loading
    return picker.show(q, rankCanned(list, q));
  }

  return { el, handleKey: picker.handleKey, update, close: picker.close };
}
