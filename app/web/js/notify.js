// Browser notifications, opt-in: new conversations, and private notes that mention the
// agent (`@Name`, or Chatwoot's `mention://user/<id>/…` links). The choice is kept in
// localStorage; nothing is asked before the agent presses the button.

import { h } from "./dom.js";
import { t } from "./i18n.js";

const PREF_KEY = "postroom.notifications";

function supported() {
  return typeof Notification !== "undefined";
}

/** Whether a note's text mentions `me` ({id, name}). */
export function mentions(content, me) {
  if (!content) return false;
  if (content.includes(`mention://user/${me.id}/`)) return true;
  return Boolean(me.name) && content.toLocaleLowerCase().includes(`@${me.name.toLocaleLowerCase()}`);
}

/** {button(), notify(title, body, tag, onClick), sent} — `sent` lists what was shown (for tests). */
export function createNotifier() {
  const sent = [];
  let wanted = false;
  try { wanted = localStorage.getItem(PREF_KEY) === "on"; } catch { /* private mode */ }
  let el = null;

  function enabled() {
    return wanted && supported() && Notification.permission === "granted";
  }

  function label() {
    if (!supported() || Notification.permission === "denied") return t("notify.blocked");
    return enabled() ? t("notify.on") : t("notify.enable");
  }

  async function toggle() {
    if (!supported()) return;
    if (enabled()) {
      wanted = false;
    } else {
      const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
      wanted = permission === "granted";
    }
    try { localStorage.setItem(PREF_KEY, wanted ? "on" : "off"); } catch { /* private mode */ }
    refresh();
  }

  function refresh() {
    if (!el) return;
    el.textContent = label();
    el.setAttribute("aria-pressed", String(enabled()));
    el.disabled = !supported() || Notification.permission === "denied";
  }

  function button() {
    el = h("button", { type: "button", class: "ghost", id: "notify-toggle", onclick: toggle });
    refresh();
    return el;
  }

  function notify(title, body, tag, onClick) {
    if (!enabled()) return;
    sent.push({ title, body, tag });
    try {
      const note = new Notification(title, { body, tag, lang: document.documentElement.lang });
      note.onclick = () => { window.focus(); onClick?.(); note.close(); };
    } catch { /* some browsers only allow notifications from a service worker */ }
  }

  return { button, notify, sent, enabled };
}
