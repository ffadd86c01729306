// The list under the composer that canned responses (`/`) and mentions (`@`) share: the
// caller opens it with what the agent typed after the trigger; ↑/↓ move, Enter or Tab
// insert the active choice in place of the trigger, Esc closes, and a blur closes it
// shortly after unless the box has the focus again.

import { closeOnBlur, h, replaceChildren } from "./dom.js";

/**
 * Attach a list picker to `textarea`, filling `list` (the caller's <ul role="listbox">).
 * - `trigger`: a RegExp ending in `$`, matched against the text before the caret; group 1
 *   is the start or space before the trigger character, group 2 the query typed after it.
 * - `optionId(item)`, `optionClass`, `optionContent(item)`: an item's <li>.
 * - `emptyText(query)`: the line shown when nothing matches.
 * - `insertText(item)`: what replaces the trigger and query when the item is picked.
 * - `onPick(item)` before inserting; `onShow()` each time the list is drawn, `onClose()`
 *   when it closes (optional).
 * Returns {typedQuery() → the query before the caret or null, show(query, items), close(),
 * handleKey(event) → true when it used the key}.
 */
export function listPicker(textarea, { list, trigger, optionId, optionClass, optionContent, emptyText, insertText,
  onPick, onShow, onClose }) {
  let query = null;
  let shown = [];
  let active = 0;

  function typedQuery() {
    const match = trigger.exec(textarea.value.slice(0, textarea.selectionStart));
    return match ? match[2] : null;
  }

  function close() {
    // Already closed: leave the box's ARIA state alone (it may be the other picker's).
    if (query === null && list.hidden) return;
    query = null;
    shown = [];
    list.hidden = true;
    textarea.setAttribute("aria-expanded", "false");
    onClose?.();
    textarea.removeAttribute("aria-activedescendant");
  }

  function render() {
    list.hidden = false;
    onShow?.();
    textarea.setAttribute("aria-expanded", "true");
    if (!shown.length) {
      replaceChildren(list, h("li", { class: "canned-empty", role: "presentation" }, emptyText(query)));
      textarea.removeAttribute("aria-activedescendant");
      return;
    }
    replaceChildren(list, shown.map((item, index) => h("li", {
      id: optionId(item), role: "option", class: optionClass, "aria-selected": String(index === active),
      onmousedown: (event) => { event.preventDefault(); pick(item); },
    }, optionContent(item))));
    textarea.setAttribute("aria-activedescendant", optionId(shown[active]));
  }

  function pick(item) {
    onPick?.(item);
    const caret = textarea.selectionStart;
    const before = textarea.value.slice(0, caret).replace(trigger, (_, space) => space + insertText(item));
    textarea.value = before + textarea.value.slice(caret);
    textarea.setSelectionRange(before.length, before.length);
    close();
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
    textarea.focus();
  }

  /** Open (or redraw) the list with `items` for `query`, the first one active. */
  function show(newQuery, items) {
    query = newQuery;
    shown = items;
    active = 0;
    render();
  }

  function handleKey(event) {
    if (query === null || list.hidden) return false;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (shown.length) active = (active + (event.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
      render();
    } else if ((event.key === "Enter" || event.key === "Tab") && !event.shiftKey && !event.isComposing) {
      if (!shown.length) { close(); return false; }
      pick(shown[active]);
    } else if (event.key === "Escape") {
      close();
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }

  closeOnBlur(textarea, close);
  return { typedQuery, show, close, handleKey };
}
