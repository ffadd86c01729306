// Mentions in private notes: typing `@` (at the start or after a space) lists the
// account's agents, filtered by what follows; ↑/↓ move, Enter or Tab insert `@Name`,
// Esc closes. On sending, each picked `@Name` becomes Chatwoot's mention link,
// `[@Name](mention://user/<id>/<name, URI-encoded>)`, which is what notifications (and
// Chatwoot clients) look for; `mentionParts` turns stored links back into `@Name`.

import { h } from "./dom.js";
import { t } from "./i18n.js";
import { listPicker } from "./picker.js";

const TRIGGER = /(^|\s)@([^\s@]*)$/u;
const LINK = /\[@([^\]]*)\]\(mention:\/\/user\/(\d+)\/[^)\s]*\)/gu;
const MAX_SHOWN = 8;

function agentName(agent) {
  return agent.available_name || agent.name || agent.email || `#${agent.id}`;
}

/** Agents matching `query`: name starts with it, then a word of it does, then contains it. */
export function rankAgents(agents, query) {
  const q = query.toLocaleLowerCase();
  const scored = [];
  for (const agent of agents) {
    const name = agentName(agent).toLocaleLowerCase();
    const email = (agent.email || "").toLocaleLowerCase();
    const score = name.startsWith(q) ? 0 : name.split(/\s+/u).some((w) => w.startsWith(q)) ? 1
      : name.includes(q) || email.startsWith(q) ? 2 : -1;
    if (score >= 0) scored.push([score, name, agent]);
  }
  scored.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
  return scored.slice(0, MAX_SHOWN).map((x) => x[2]);
}

/** Stored text split into strings and {mention: {id, name}} parts, for display. */
export function mentionParts(text) {
  const parts = [];
  let last = 0;
  for (const match of (text || "").matchAll(LINK)) {
    if (match.index > last) parts.push(text.slice(last, match.index));
    parts.push({ mention: { id: Number(match[2]), name: match[1] } });
    last = match.index + match[0].length;
  }
  if (last < (text || "").length) parts.push(text.slice(last));
  return parts;
}

/** Stored text with mention links shown as `@Name` (list previews, notifications). */
export function plainMentions(text) {
  return (text || "").replace(LINK, (_, name) => `@${name}`);
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/gu, "\\$&");
}

/**
 * Attach the picker to `textarea`. `agents()` gives the account's agents, `enabled()`
 * whether the composer writes a private note. Returns {el, handleKey(event) → true when
 * it used the key, update(), close(), encode(text), reset()}.
 */
export function mentionPicker(textarea, { agents, enabled }) {
  const picked = new Map();  // shown name -> agent id
  const el = h("ul", { class: "canned mentions", id: "mention-list", role: "listbox", "aria-label": t("mention.label"),
    hidden: true });
  const picker = listPicker(textarea, {
    list: el,
    trigger: TRIGGER,
    optionId: (agent) => `mention-${agent.id}`,
    optionClass: "canned-item mention-item",
    optionContent: (agent) => [h("span", { class: "canned-code", dir: "auto" }, `@${agentName(agent)}`),
      agent.email ? h("span", { class: "canned-text" }, " ", agent.email) : null],
    emptyText: (query) => t("mention.none", { q: query }),
    insertText: (agent) => `@${agentName(agent)} `,
    onPick: (agent) => picked.set(agentName(agent), agent.id),
    // The box's list is the canned responses' except while this one is open.
    onShow: () => textarea.setAttribute("aria-controls", "mention-list"),
    onClose: () => textarea.setAttribute("aria-controls", "canned-list"),
  });

  function update() {
    const q = enabled() ? picker.typedQuery() : null;
    if (q === null) return picker.close();
    return picker.show(q, rankAgents(agents(), q));
  }

  /** The note's text with each picked `@Name` still in it as Chatwoot's mention link. */
  function encode(text) {
    const names = [...picked.keys()].filter((name) => text.includes(`@${name}`)).sort((a, b) => b.length - a.length);
    if (!names.length) return text;
    // Not inside a longer word: a picked "Ann" leaves "@Anna" alone.
    const pattern = new RegExp(`@(${names.map(escapeRegExp).join("|")})(?![\\p{L}\\p{M}\\p{N}])`, "gu");
    return text.replace(pattern, (_, name) => `[@${name}](mention://user/${picked.get(name)}/${encodeURIComponent(name)})`);
  }

  return { el, handleKey: picker.handleKey, update, close: picker.close, encode, reset: () => picked.clear() };
}
