// A tiny element builder. User content only ever goes in as text (never innerHTML).

/**
 * h("button", {class: "x", onclick: fn, "aria-label": "…"}, "text", childNode, [more])
 * Attributes: `class`, `dataset` (object), `on<event>` (listener), booleans (true → present),
 * null/undefined/false → absent, everything else → setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace all children of `el`. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** Keep the children of `parent` equal to `nodes`, in order, moving as few as possible. */
export function reconcile(parent, nodes) {
  const active = document.activeElement;
  nodes.forEach((node, index) => {
    const at = parent.children[index];
    if (at !== node) parent.insertBefore(node, at || null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
  if (active && active !== document.activeElement && parent.contains(active)) active.focus({ preventScroll: true });
}

/**
 * Close a picker attached to `input` shortly after the input loses focus (the delay lets a
 * click on the picker land first), unless the focus has come back by then: a stale timer
 * must not close a picker the agent opened again meanwhile.
 */
export function closeOnBlur(input, close, delayMs = 150) {
  input.addEventListener("blur", () => setTimeout(() => {
    if (document.activeElement !== input) close();
  }, delayMs));
}
