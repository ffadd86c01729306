// Canned responses in the composer: typing `/` (at the start or after a space) opens a
// list filtered by what follows; ↑/↓ move, Enter or Tab insert, Esc closes.

import { closeOnBlur, h, replaceChildren } from "./dom.js";
import { t } from "./i18n.js";

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
  let shown = [];
  let active = 0;
  let query = null;
  const el = h("ul", { class: "canned", id: "canned-list", role: "listbox", "aria-label": t("canned.label"), hidden: true });
  textarea.setAttribute("aria-controls", "canned-list");
  textarea.setAttribute("aria-autocomplete", "list");
  textarea.setAttribute("aria-expanded", "false");

  async function load() {
    if (items) return items;
    loading ||= api.get("/canned_responses").then((list) => { items = list; return list; }).catch(() => { loading = null; return []; });
    return loading;
  }

  function trigger() {
    const before = textarea.value.slice(0, textarea.selectionStart);
    const match = TRIGGER.exec(before);
    return match ? match[2] : null;
  }

  function close() {
    query = null;
    shown = [];
    el.hidden = true;
    textarea.setAttribute("aria-expanded", "false");
    textarea.removeAttribute("aria-activedescendant");
  }

  function render() {
    if (query === null) return close();
    el.hidden = false;
    textarea.setAttribute("aria-expanded", "true");
    if (!shown.length) {
      replaceChildren(el, h("li", { class: "canned-empty", role: "presentation" }, t("canned.none", { q: query })));
      textarea.removeAttribute("aria-activedescendant");
      return;
    }
    replaceChildren(el, shown.map((item, index) => h("li", {
      id: `canned-${item.id}`, role: "option", class: "canned-item", "aria-selected": String(index === active),
      onmousedown: (event) => { event.preventDefault(); insert(item); },
    }, h("span", { class: "canned-code" }, `/${item.short_code}`), " ", h("span", { class: "canned-text", dir: "auto" }, item.content))));
    textarea.setAttribute("aria-activedescendant", `canned-${shown[active].id}`);
  }

  function insert(item) {
    const caret = textarea.selectionStart;
    const before = textarea.value.slice(0, caret).replace(TRIGGER, (_, space) => space + item.content);
    textarea.value = before + textarea.value.slice(caret);
    textarea.setSelectionRange(before.length, before.length);
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
    close();
    textarea.focus();
  }

  async function update() {
    const q = trigger();
    if (q === null) return close();
    const list = await load();
    if (trigger() !== q) return undefined;  // typed on while loading
    query = q;
    shown = rankCanned(list, q);
    active = 0;
    return render();
  }

  function handleKey(event) {
    if (query === null || el.hidden) return false;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (shown.length) active = (active + (event.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
      render();
    } else if ((event.key === "Enter" || event.key === "Tab") && !event.shiftKey && !event.isComposing) {
      if (!shown.length) { close(); return false; }
      insert(shown[active]);
    } else if (event.key === "Escape") {
      close();
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }

  closeOnBlur(textarea, close);
  return { el, handleKey, update, close };
}
