// The agents' inbox: conversation list (tabs, filters, keyset paging), conversation view
// (messages, notes, actions), composer, live updates from the stream, shortcuts.

import { attachmentView, filePicker } from "./attachments.js";
import { cannedPicker } from "./canned.js";
import { contactPanel } from "./contact-panel.js";
import { h, reconcile, replaceChildren } from "./dom.js";
import { LANGUAGES, formatAgo, formatTime, isoTime, language, setLanguage, t } from "./i18n.js";
import { mentionParts, mentionPicker, plainMentions } from "./mentions.js";
import { createNotifier, mentions } from "./notify.js";
import { formatDuration, riskBand, sellerView } from "./seller.js";
import { DEFAULT_SORT, SORT_KEYS, comparator } from "./sorting.js";
import { LiveStream } from "./stream.js";
import "./strings-inbox.js";

const STATUSES = ["open", "pending", "snoozed", "resolved", "all"];
const TABS = [
  { key: "mine", assignee: "me", count: "mine_count" },
  { key: "unassigned", assignee: "unassigned", count: "unassigned_count" },
  { key: "all", assignee: "all", count: "all_count" },
];
const MESSAGE = { incoming: 0, outgoing: 1, activity: 2, template: 3 };
const CHANNELS = {
  "Channel::Email": "channel.email", "Channel::WebWidget": "channel.web_widget", "Channel::Api": "channel.api",
  "Channel::FacebookPage": "Messenger", "Channel::Instagram": "Instagram", "Channel::Whatsapp": "WhatsApp",
  "Channel::Telegram": "Telegram", "Channel::Line": "LINE", "Channel::Sms": "SMS", "Channel::Shopee": "Shopee",
  "Channel::Lazada": "Lazada", "Channel::TiktokShop": "TikTok Shop", "Channel::Amazon": "Amazon",
  "Channel::Walmart": "Walmart", "Channel::Ebay": "eBay",
};
const PREFS_KEY = "postroom.inbox.prefs";
const PRIORITIES = ["", "low", "medium", "high", "urgent"];
const SEARCH_DELAY_MS = 250;
// Kept in step with the server's POSTROOM_MAX_UPLOAD_BYTES default (25 MiB); the server decides.
const MAX_UPLOAD_BYTES = 25 * 1024 * 1024;
// Channel types whose reply window, once closed, still allows templates (and nothing free).
const TEMPLATE_CHANNELS = new Set(["Channel::Whatsapp"]);
const TYPING_SEND_MS = 3000;
const TYPING_IDLE_MS = 4000;
const TYPING_SHOW_MS = 6000;

function channelLabel(channelType) {
  const label = CHANNELS[channelType];
  if (!label) return (channelType || "").replace("Channel::", "");
  return label.startsWith("channel.") ? t(label) : label;
}

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function loadPrefs() {
  try { return JSON.parse(localStorage.getItem(PREFS_KEY)) || {}; } catch { return {}; }
}

export function mountInbox(root, session, api, { onLogout }) {
  const prefs = loadPrefs();
  const state = {
    tab: TABS.some((x) => x.key === prefs.tab) ? prefs.tab : "all",
    status: STATUSES.includes(prefs.status) ? prefs.status : "open",
    inboxId: prefs.inboxId || "",
    sort: SORT_KEYS.includes(prefs.sort) ? prefs.sort : DEFAULT_SORT,
    conversations: new Map(),   // display id -> conversation (REST shape)
    order: [],                  // display ids shown in the list, newest activity first
    nextCursor: null,
    counts: {},
    listGeneration: 0,
    listLoading: false,
    listLoaded: false,
    selected: null,
    messages: new Map(),        // display id -> Map(key -> message)
    agents: [],
    inboxes: new Map(),
    labels: [],
    typing: new Map(),          // display id -> {name, timer}
    live: "connecting",
    ready: false,
    buffered: [],
    fetching: new Set(),
    mode: "reply",
    query: "",                  // the search box; non-empty: the list shows search results
    searchPage: 0,
    searchCount: null,
    teams: [],
    view: "list",               // "list" or "seller"
  };
  const me = session.user;
  const els = {};
  const rows = new Map();        // display id -> row <li>
  const messageEls = new Map();  // message key -> {el, version}
  let stream = null;
  let countsTimer = null;
  let seenTimer = null;
  let typingSent = 0;
  let typingIdle = null;
  let listRenderedOnce = false;
  let searchTimer = null;
  let windowTimer = null;
  let countdownTimer = null;
  let seller = null;
  let canned = null;
  let mention = null;
  let panel = null;
  let files = null;
  const notifier = createNotifier();

  // -- layout ---------------------------------------------------------------------------
  function build() {
    rows.clear();
    messageEls.clear();
    const languageSelect = h("select", { id: "language", onchange: (e) => { setLanguage(e.target.value); build(); } },
      Object.entries(LANGUAGES).map(([code, info]) => h("option", { value: code, selected: code === language() }, info.name)));
    els.live = h("span", { class: "live", role: "status", "data-state": state.live }, t(`live.${state.live}`));
    const header = h("header", { class: "topbar" },
      h("a", { class: "skip", href: "#conversation" }, t("app.skip")),
      h("span", { class: "brand" }, "Postroom"),
      h("span", { class: "account", dir: "auto" }, session.accountName || ""),
      els.live,
      h("span", { class: "spacer" }),
      h("label", { class: "inline-label", for: "language" }, t("header.language")),
      languageSelect,
      notifier.button(),
      h("button", { type: "button", class: "ghost", id: "shortcuts-button", "aria-haspopup": "dialog",
        onclick: openShortcuts }, h("kbd", {}, "?"), " ", t("header.shortcuts")),
      h("span", { class: "me", dir: "auto", title: t("header.signedInAs", { name: me.name }) }, me.name),
      h("button", { type: "button", class: "ghost", id: "logout", onclick: onLogout }, t("header.logout")));

    els.tabs = h("div", { class: "tabs", role: "tablist", "aria-label": t("tabs.label"), onkeydown: tabKeys });
    els.status = h("select", { id: "status-filter", onchange: (e) => changeFilter({ status: e.target.value }) },
      STATUSES.map((s) => h("option", { value: s, selected: s === state.status }, t(`status.${s}`))));
    els.inbox = h("select", { id: "inbox-filter", onchange: (e) => changeFilter({ inboxId: e.target.value }) });
    els.sort = h("select", { id: "sort-by", onchange: (e) => changeFilter({ sort: e.target.value }) },
      SORT_KEYS.map((s) => h("option", { value: s, selected: s === state.sort }, t(`sort.${s}`))));
    els.list = h("ul", { class: "conv-list", id: "conv-list", "aria-label": t("list.label") });
    els.listNote = h("p", { class: "list-note", role: "status" });
    els.more = h("button", { type: "button", class: "load-more", hidden: true, onclick: () => loadList({ append: true }) },
      t("list.loadMore"));
    els.search = h("input", { type: "search", id: "search", value: state.query, placeholder: t("search.placeholder"),
      autocomplete: "off", dir: "auto", oninput: (e) => searchChanged(e.target.value), onkeydown: searchKeys });
    els.searchNote = h("p", { class: "search-note", id: "search-note", role: "status" });
    els.sellerButton = h("button", { type: "button", class: "secondary seller-toggle", id: "seller-toggle",
      "aria-pressed": String(state.view === "seller"), onclick: () => showView(state.view === "seller" ? "list" : "seller") },
    state.view === "seller" ? t("seller.back") : t("seller.tab"));
    const sidebar = h("nav", { class: "sidebar", "aria-label": t("list.label") },
      h("form", { class: "search", role: "search", onsubmit: (e) => { e.preventDefault(); searchChanged(els.search.value, 0); } },
        h("label", { for: "search", class: "sr-only" }, t("search.label")), els.search,
        h("button", { type: "button", class: "link", id: "search-clear", hidden: !state.query, "aria-label": t("search.clear"),
          onclick: () => { els.search.value = ""; searchChanged("", 0); els.search.focus(); } }, "×")),
      els.searchNote,
      els.sellerButton,
      els.tabs,
      h("div", { class: "filters" },
        h("div", { class: "field" }, h("label", { for: "status-filter" }, t("filter.status")), els.status),
        h("div", { class: "field" }, h("label", { for: "inbox-filter" }, t("filter.inbox")), els.inbox),
        h("div", { class: "field" }, h("label", { for: "sort-by" }, t("sort.label")), els.sort)),
      h("div", { class: "list-panel", role: "tabpanel", id: "conv-panel" }, els.list, els.listNote, els.more));

    els.main = h("main", { class: "conversation", id: "conversation", tabindex: "-1" });
    els.aside = h("aside", { class: "contact-panel", id: "contact-panel", "aria-labelledby": "contact-title" });
    els.announcer = h("div", { class: "sr-only", "aria-live": "polite", id: "announcer" });
    els.dialog = buildShortcuts();
    replaceChildren(root, header, h("div", { class: "layout" }, sidebar, els.main, els.aside), els.announcer, els.dialog);
    panel = contactPanel(els.aside, api, { channelLabel, onOpen: (id) => select(id, { focusRow: true }) });
    seller?.stop();
    seller = sellerView(els.main, api, { channelLabel, inboxName: (id) => state.inboxes.get(id)?.name,
      onOpen: (id) => { showView("list"); select(id); } });
    root.removeAttribute("aria-busy");
    renderTabs();
    renderInboxFilter();
    renderList();
    renderSearchNote();
    if (state.view === "seller") showView("seller");
    else renderConversation();
  }

  function buildShortcuts() {
    const items = [
      ["j", "shortcuts.next"], ["k", "shortcuts.prev"], ["r", "shortcuts.reply"], ["n", "shortcuts.note"],
      ["e", "shortcuts.resolve"], ["?", "shortcuts.help"], ["Enter", "shortcuts.send"],
      ["Shift+Enter", "shortcuts.newline"], ["Esc", "shortcuts.leave"],
    ];
    const dialog = h("dialog", { class: "shortcuts", id: "shortcuts", "aria-labelledby": "shortcuts-title" },
      h("h2", { id: "shortcuts-title" }, t("shortcuts.title")),
      h("dl", {}, items.map(([key, label]) => [h("dt", {}, h("kbd", {}, key)), h("dd", {}, t(label))])),
      h("form", { method: "dialog" }, h("button", { type: "submit", class: "primary" }, t("shortcuts.close"))));
    return dialog;
  }

  function openShortcuts() {
    if (!els.dialog.open) els.dialog.showModal();
  }

  function announce(text) {
    els.announcer.textContent = "";
    setTimeout(() => { els.announcer.textContent = text; }, 30);
  }

  function setLive(status) {
    state.live = status;
    if (!els.live) return;
    els.live.dataset.state = status;
    els.live.textContent = t(`live.${status}`);
  }

  // -- tabs and filters -----------------------------------------------------------------
  function renderTabs() {
    replaceChildren(els.tabs, TABS.map((tab) => {
      const selected = tab.key === state.tab;
      const count = state.counts[tab.count];
      return h("button", {
        type: "button", role: "tab", id: `tab-${tab.key}`, "aria-selected": String(selected),
        "aria-controls": "conv-panel", tabindex: selected ? "0" : "-1", class: "tab",
        onclick: () => changeFilter({ tab: tab.key }),
      }, t(`tabs.${tab.key}`), " ", h("span", { class: "count", "data-count": tab.key }, count ?? "…"));
    }));
    const panel = root.querySelector("#conv-panel");
    if (panel) panel.setAttribute("aria-labelledby", `tab-${state.tab}`);
  }

  function tabKeys(event) {
    if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
    const index = TABS.findIndex((x) => x.key === state.tab);
    const rtl = document.documentElement.dir === "rtl";
    let next = index;
    if (event.key === "Home") next = 0;
    else if (event.key === "End") next = TABS.length - 1;
    else next = (index + ((event.key === "ArrowRight") !== rtl ? 1 : -1) + TABS.length) % TABS.length;
    event.preventDefault();
    changeFilter({ tab: TABS[next].key });
    els.tabs.querySelector(`#tab-${TABS[next].key}`)?.focus();
  }

  function renderInboxFilter() {
    replaceChildren(els.inbox,
      h("option", { value: "" }, t("filter.allInboxes")),
      [...state.inboxes.values()].map((inbox) =>
        h("option", { value: String(inbox.id), selected: String(inbox.id) === String(state.inboxId) }, inbox.name)));
  }

  function changeFilter(change) {
    Object.assign(state, change);
    try {
      localStorage.setItem(PREFS_KEY, JSON.stringify({ tab: state.tab, status: state.status, inboxId: state.inboxId,
        sort: state.sort }));
    } catch { /* private mode */ }
    renderTabs();
    loadList();
    refreshCounts(0);
  }

  function matches(conv) {
    // Search results cannot be re-judged here: listed ones stay, new ones are not added.
    if (state.query) return state.order.includes(conv.id);
    if (state.status !== "all" && conv.status !== state.status) return false;
    if (state.inboxId && String(conv.inbox_id) !== String(state.inboxId)) return false;
    if (state.tab === "mine") return conv.assignee_id === me.id;
    if (state.tab === "unassigned") return !conv.assignee_id;
    return true;
  }

  function listQuery(extra = {}) {
    const params = new URLSearchParams({ status: state.status, ...extra });
    if (state.sort !== DEFAULT_SORT) params.set("sort_by", state.sort);
    if (state.inboxId) params.set("inbox_id", state.inboxId);
    if (state.query) params.set("q", state.query);  // the API then ignores the status, as Chatwoot does
    return params;
  }

  // -- search -------------------------------------------------------------------------------
  function searchChanged(value, delay = SEARCH_DELAY_MS) {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      const q = value.trim();
      if (q === state.query) return;
      state.query = q;
      state.searchCount = null;
      const clear = root.querySelector("#search-clear");
      if (clear) clear.hidden = !q;
      renderSearchNote();
      loadList();
    }, delay);
  }

  function searchKeys(event) {
    if (event.key === "Escape" && els.search.value) {
      event.preventDefault();
      els.search.value = "";
      searchChanged("", 0);
    } else if (event.key === "ArrowDown" && state.order.length) {
      event.preventDefault();
      select(state.order[0], { focusRow: true });
    }
  }

  function renderSearchNote() {
    if (!els.searchNote) return;
    const text = !state.query || state.searchCount === null ? ""
      : state.searchCount ? t("search.results", { count: state.searchCount }) : t("search.none", { q: state.query });
    els.searchNote.textContent = text;
    els.searchNote.hidden = !text;
  }

  // -- views: the conversations, or the seller view ----------------------------------------------
  function showView(view) {
    state.view = view;
    els.sellerButton.setAttribute("aria-pressed", String(view === "seller"));
    els.sellerButton.textContent = view === "seller" ? t("seller.back") : t("seller.tab");
    if (view === "seller") {
      els.aside.hidden = true;
      els.main.setAttribute("aria-label", t("seller.title"));
      els.messages = null;
      seller.start().catch((error) => announce(t("error.generic", { message: error.message })));
    } else {
      seller.stop();
      els.aside.hidden = false;
      renderConversation();
    }
  }

  // -- the list ---------------------------------------------------------------------------
  async function loadList({ append = false } = {}) {
    const generation = append ? state.listGeneration : ++state.listGeneration;
    const tab = TABS.find((x) => x.key === state.tab);
    const params = listQuery({ assignee_type: tab.assignee });
    if (append) {
      if (!state.nextCursor) return;
      params.set("after", state.nextCursor);
    }
    state.listLoading = true;
    renderListNote();
    try {
      const answer = await api.get(`/conversations?${params}`);
      if (generation !== state.listGeneration) return;
      const { meta, payload } = answer.data;
      if (!append) state.order = [];
      for (const conv of payload) {
        state.conversations.set(conv.id, { ...state.conversations.get(conv.id), ...conv });
        if (!state.order.includes(conv.id)) state.order.push(conv.id);
      }
      state.nextCursor = meta.next_cursor;
      if (!append && meta.all_count !== undefined) {
        state.counts = meta;
        state.searchCount = state.query ? meta[tab.count] : null;
        renderTabs();
        renderSearchNote();
      }
      state.listLoaded = true;
    } catch (error) {
      if (generation === state.listGeneration) announce(t("error.generic", { message: error.message }));
    } finally {
      if (generation === state.listGeneration) state.listLoading = false;
    }
    renderList();
  }

  function sortOrder() {
    const compare = comparator(state.sort);
    state.order.sort((a, b) => compare(state.conversations.get(a), state.conversations.get(b)));
  }

  function renderListNote() {
    if (!els.listNote) return;
    els.listNote.textContent = state.listLoading ? t("list.loading") : (state.order.length ? "" : t("list.empty"));
    els.more.hidden = !state.nextCursor || state.listLoading;
  }

  function renderList() {
    if (!els.list) return;
    const nodes = state.order.map((id) => {
      const conv = state.conversations.get(id);
      let row = rows.get(id);
      const version = rowVersion(conv);
      if (!row || row.dataset.version !== version) {
        const fresh = buildRow(conv);
        fresh.dataset.version = version;
        if (row && row.contains(document.activeElement)) {
          row.replaceWith(fresh);
          fresh.querySelector("button").focus({ preventScroll: true });
        }
        row = fresh;
        rows.set(id, row);
      }
      return row;
    });
    reconcile(els.list, nodes);
    for (const id of [...rows.keys()]) if (!state.order.includes(id)) rows.delete(id);
    renderListNote();
    if (!listRenderedOnce && state.listLoaded) {
      listRenderedOnce = true;
      performance.mark("postroom:list-rendered");
      root.dataset.listRendered = "true";
    }
  }

  function rowVersion(conv) {
    const last = conv.last_non_activity_message || {};
    const due = conv.sla?.next_due_at;
    return [conv.status, conv.assignee_id, conv.unread_count, conv.last_activity_at, last.id, last.content,
      state.selected === conv.id, language(), due ? Math.floor((due - Date.now() / 1000) / 60) : ""].join("|");
  }

  /** The SLA countdown of a row: time left to the soonest clock, coloured by risk. */
  function countdown(conv) {
    const due = conv.sla?.next_due_at;
    if (!due || conv.status === "resolved") return null;
    const left = due - Date.now() / 1000;
    return h("span", { class: `countdown row-countdown risk-${riskBand(left)}`, title: formatTime(due) },
      t(left < 0 ? "seller.overdue" : "seller.left", { time: formatDuration(left) }));
  }

  function preview(conv) {
    const last = conv.last_non_activity_message;
    if (!last) return t("list.noMessages");
    const text = (plainMentions(last.content) || (last.attachments?.[0] && t("msg.attachment", { name: last.attachments[0].file_name || "" })) || "")
      .replace(/\s+/g, " ").trim();
    return last.private ? t("list.private", { text }) : text;
  }

  function buildRow(conv) {
    const contact = conv.meta?.sender || conv.contact || {};
    const assignee = conv.meta?.assignee;
    const inbox = state.inboxes.get(conv.inbox_id) || conv.inbox || {};
    const selected = state.selected === conv.id;
    const unread = conv.unread_count > 0 && !selected;
    return h("li", { dataset: { id: conv.id } },
      h("button", {
        type: "button", class: `conv-row${unread ? " unread" : ""}`, "aria-current": selected ? "true" : null,
        dataset: { id: conv.id, status: conv.status }, onclick: () => select(conv.id),
      },
      h("span", { class: "row-top" },
        h("span", { class: "row-name", dir: "auto" }, contact.name || `#${conv.id}`),
        h("time", { class: "row-time", datetime: isoTime(conv.last_activity_at), title: formatTime(conv.last_activity_at) },
          formatAgo(conv.last_activity_at))),
      h("span", { class: "row-channel" },
        h("span", { class: "channel-tag" }, channelLabel(inbox.channel_type || conv.meta?.channel)),
        " ", h("span", { dir: "auto" }, inbox.name || "")),
      h("span", { class: "row-preview", dir: "auto" }, preview(conv)),
      h("span", { class: "row-bottom" },
        h("span", { class: "row-assignee", dir: "auto" }, assignee ? (assignee.available_name || assignee.name) : t("list.unassigned")),
        countdown(conv),
        unread ? h("span", { class: "unread-badge", "aria-label": t("list.unread", { count: conv.unread_count }) },
          String(conv.unread_count)) : null)));
  }

  /** Store a conversation from REST or the stream; place it in, or take it out of, the list. */
  function upsert(conv) {
    const previous = state.conversations.get(conv.id);
    const merged = { ...previous, ...conv };
    if (previous && !conv.last_non_activity_message && previous.last_non_activity_message) {
      merged.last_non_activity_message = previous.last_non_activity_message;
    }
    state.conversations.set(conv.id, merged);
    const listed = state.order.includes(conv.id);
    if (matches(merged) && !listed) state.order.push(conv.id);
    if (!matches(merged) && listed) state.order = state.order.filter((id) => id !== conv.id);
    sortOrder();
    renderList();
    if (state.selected === conv.id) {
      renderConversationHeader();
      renderWindow();
    }
    return merged;
  }

  function refreshCounts(delay = 400) {
    clearTimeout(countsTimer);
    countsTimer = setTimeout(async () => {
      try {
        const answer = await api.get(`/conversations/meta?${listQuery()}`);
        state.counts = answer.meta;
        renderTabs();
      } catch { /* the next change retries */ }
    }, delay);
  }

  function move(step) {
    if (!state.order.length) return;
    const index = state.order.indexOf(state.selected);
    const next = index === -1 ? (step > 0 ? 0 : state.order.length - 1)
      : Math.min(state.order.length - 1, Math.max(0, index + step));
    select(state.order[next], { focusRow: true });
  }

  // -- one conversation -------------------------------------------------------------------
  async function select(id, { focusRow = false } = {}) {
    if (state.view === "seller") showView("list");
    const changed = state.selected !== id;
    state.selected = id;
    history.replaceState(null, "", `#/conversations/${id}`);
    if (!state.conversations.has(id)) await fetchConversation(id);
    renderList();
    if (focusRow) {
      const button = rows.get(id)?.querySelector("button");
      button?.focus();
      button?.scrollIntoView({ block: "nearest" });
    }
    if (changed) renderConversation();
    const conv = state.conversations.get(id);
    if (!conv) return;
    try {
      const answer = await api.get(`/conversations/${id}/messages`);
      for (const message of answer.payload) addMessage(message, { render: false });
      if (state.selected === id) renderMessages({ scroll: "bottom" });
    } catch (error) {
      if (state.selected === id) {
        replaceChildren(els.messages, h("li", { class: "msg activity", role: "alert" }, t("conv.loadFailed", { message: error.message })));
      }
    }
    markSeen(id, 0);
  }

  async function fetchConversation(id, { force = false } = {}) {
    if (state.fetching.has(id) && !force) return;
    state.fetching.add(id);
    try {
      upsert(await api.get(`/conversations/${id}`));
      refreshCounts();
    } catch { /* not visible to this agent */ } finally {
      state.fetching.delete(id);
    }
  }

  function markSeen(id, delay = 800) {
    clearTimeout(seenTimer);
    seenTimer = setTimeout(async () => {
      const conv = state.conversations.get(id);
      if (!conv || state.selected !== id || document.visibilityState === "hidden") return;
      try {
        await api.post(`/conversations/${id}/update_last_seen`, {});
        conv.unread_count = 0;
        renderList();
      } catch { /* harmless */ }
    }, delay);
  }

  function renderConversation() {
    if (!els.main) return;
    messageEls.clear();
    const conv = state.conversations.get(state.selected);
    if (state.view === "seller") return;
    if (!conv) {
      replaceChildren(els.main, h("div", { class: "empty-state" },
        h("h2", {}, t("conv.none")), h("p", {}, t("conv.noneHint"))));
      els.messages = null;
      replaceChildren(els.aside);
      return;
    }
    els.header = h("header", { class: "conv-header" });
    els.messages = h("ol", { class: "messages", role: "log", "aria-label": t("conv.messages"), tabindex: "0" });
    els.typing = h("p", { class: "typing", "aria-live": "polite" });
    els.main.setAttribute("aria-label", t("conv.number", { id: conv.id }));
    replaceChildren(els.main, els.header, els.messages, els.typing, buildComposer());
    renderConversationHeader();
    renderWindow();
    renderMessages({ scroll: "bottom" });
    renderTyping();
    panel.show(conv);
  }

  function renderConversationHeader() {
    const conv = state.conversations.get(state.selected);
    if (!conv || !els.header) return;
    const contact = conv.meta?.sender || conv.contact || {};
    const inbox = state.inboxes.get(conv.inbox_id) || conv.inbox || {};
    const resolved = conv.status === "resolved";
    const assignee = h("select", { id: "assignee", onchange: (e) => assign(conv.id, e.target.value) },
      h("option", { value: "" }, t("conv.unassigned")),
      state.agents.map((agent) => h("option", { value: String(agent.id), selected: agent.id === conv.assignee_id },
        agent.available_name || agent.name)));
    const team = h("select", { id: "team", onchange: (e) => assignTeam(conv.id, e.target.value) },
      h("option", { value: "" }, t("conv.noTeam")),
      state.teams.map((x) => h("option", { value: String(x.id), selected: x.id === conv.team_id }, x.name)));
    const priority = h("select", { id: "priority", onchange: (e) => setPriority(conv.id, e.target.value) },
      PRIORITIES.map((p) => h("option", { value: p, selected: (conv.priority || "") === p }, t(p ? `priority.${p}` : "priority.none"))));
    const openSnooze = els.header.querySelector(".snooze-menu")?.open;
    const snooze = h("details", { class: "snooze-menu", open: openSnooze },
      h("summary", {}, t("conv.snooze")),
      h("div", { class: "menu-body" },
        h("label", { for: "snooze-until" }, t("conv.snoozeUntil")),
        h("input", { type: "datetime-local", id: "snooze-until", value: localInputValue(Date.now() + 86400_000) }),
        h("button", { type: "button", class: "primary", id: "snooze", onclick: () => snoozeUntil(conv.id) }, t("conv.snooze"))));
    const statusText = conv.status === "snoozed" && conv.snoozed_until
      ? t("conv.snoozedUntil", { when: formatTime(conv.snoozed_until) }) : t(`status.${conv.status}`);
    const labelBoxes = state.labels.length
      ? state.labels.map((label) => h("label", { class: "check" },
        h("input", { type: "checkbox", value: label.title, checked: (conv.labels || []).includes(label.title),
          onchange: () => saveLabels(conv.id) }),
        h("span", { class: "swatch", style: `background:${/^#[0-9a-f]{3,8}$/i.test(label.color || "") ? label.color : "#888"}` }),
        label.title))
      : h("p", {}, t("conv.noLabels"));
    const focusedId = document.activeElement?.id;
    const openLabels = els.header.querySelector("details")?.open;
    replaceChildren(els.header,
      h("div", { class: "conv-title" },
        h("h2", { id: "conv-title" }, h("bdi", {}, contact.name || t("conv.number", { id: conv.id }))),
        h("p", { class: "conv-meta" },
          h("span", {}, `#${conv.id}`), " · ",
          h("span", { class: "channel-tag" }, channelLabel(inbox.channel_type || conv.meta?.channel)), " ",
          h("span", { dir: "auto" }, inbox.name || ""), " · ",
          h("span", { class: `status-badge status-${conv.status}`, id: "conv-status" }, statusText))),
      h("div", { class: "conv-actions" },
        h("div", { class: "field inline" }, h("label", { for: "assignee" }, t("conv.assignee")), assignee),
        h("div", { class: "field inline" }, h("label", { for: "team" }, t("conv.team")), team),
        h("div", { class: "field inline" }, h("label", { for: "priority" }, t("conv.priority")), priority),
        snooze,
        h("details", { class: "labels-menu", open: openLabels },
          h("summary", {}, t("conv.labels"), " ", h("span", { class: "count" }, String((conv.labels || []).length))),
          h("fieldset", { id: "labels-fieldset" }, h("legend", { class: "sr-only" }, t("conv.labels")), labelBoxes)),
        h("button", { type: "button", id: "resolve", class: resolved ? "secondary" : "primary",
          onclick: () => toggleStatus(conv.id), "aria-keyshortcuts": "e" },
        resolved ? t("conv.reopen") : t("conv.resolve"))),
      (conv.labels || []).length
        ? h("ul", { class: "label-chips", "aria-label": t("conv.labels") }, conv.labels.map((l) => h("li", { dir: "auto" }, l)))
        : null);
    if (focusedId) document.getElementById(focusedId)?.focus({ preventScroll: true });
  }

  async function toggleStatus(id) {
    const conv = state.conversations.get(id);
    if (!conv) return;
    const status = conv.status === "resolved" ? "open" : "resolved";
    try {
      const answer = await api.post(`/conversations/${id}/toggle_status`, { status });
      upsert({ id, status: answer.payload.current_status });
      announce(t(status === "resolved" ? "conv.resolved" : "conv.reopened", { id }));
      refreshCounts();
    } catch (error) {
      announce(t("conv.actionFailed", { message: error.message }));
    }
  }

  async function assign(id, value) {
    try {
      const agent = await api.post(`/conversations/${id}/assignments`, { assignee_id: value ? Number(value) : null });
      const conv = state.conversations.get(id);
      upsert({ id, assignee_id: agent ? agent.id : null, meta: { ...(conv?.meta || {}), assignee: agent || null } });
      announce(t("conv.assigned", { id, name: agent ? (agent.available_name || agent.name) : t("conv.unassigned") }));
      refreshCounts();
    } catch (error) {
      announce(t("conv.actionFailed", { message: error.message }));
    }
  }

  async function assignTeam(id, value) {
    try {
      const team = await api.post(`/conversations/${id}/assignments`, { team_id: value ? Number(value) : null });
      upsert({ id, team_id: team ? team.id : null });
    } catch (error) {
      announce(t("conv.actionFailed", { message: error.message }));
    }
  }

  async function setPriority(id, value) {
    try {
      const answer = await api.post(`/conversations/${id}/toggle_priority`, { priority: value || null });
      upsert({ id, priority: answer.priority });
    } catch (error) {
      announce(t("conv.actionFailed", { message: error.message }));
    }
  }

  function localInputValue(ms) {
    const date = new Date(ms);
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  async function snoozeUntil(id) {
    const value = els.header.querySelector("#snooze-until")?.value;
    const until = value ? Math.floor(new Date(value).getTime() / 1000) : NaN;
    if (!Number.isFinite(until)) return;
    try {
      const answer = await api.post(`/conversations/${id}/toggle_status`, { status: "snoozed", snoozed_until: until });
      els.header.querySelector(".snooze-menu")?.removeAttribute("open");
      upsert({ id, status: answer.payload.current_status, snoozed_until: answer.payload.snoozed_until });
      announce(t("conv.snoozed", { id, when: formatTime(answer.payload.snoozed_until) }));
      refreshCounts();
    } catch (error) {
      announce(t("conv.actionFailed", { message: error.message }));
    }
  }

  async function saveLabels(id) {
    const chosen = [...els.header.querySelectorAll("#labels-fieldset input:checked")].map((x) => x.value);
    try {
      const answer = await api.post(`/conversations/${id}/labels`, { labels: chosen });
      upsert({ id, labels: answer.payload });
    } catch (error) {
      announce(t("conv.actionFailed", { message: error.message }));
    }
  }

  // -- messages -----------------------------------------------------------------------------
  function messageStore(id) {
    if (!state.messages.has(id)) state.messages.set(id, new Map());
    return state.messages.get(id);
  }

  function messageKey(message) {
    return message.id ? `m${message.id}` : `e${message.echo_id}`;
  }

  /** Add or replace a message (a server copy replaces the pending copy with its echo id). */
  function addMessage(message, { render = true } = {}) {
    const id = message.conversation_id;
    const store = messageStore(id);
    const echo = message.content_attributes?.echo_id;
    if (echo && store.has(`e${echo}`)) store.delete(`e${echo}`);
    const key = messageKey(message);
    const before = store.get(key);
    store.set(key, { ...before, ...message, _local: message._local || (before && before._local === "pending" ? "sent" : before?._local) });
    if (render && state.selected === id) renderMessages({ scroll: "auto" });
  }

  function sortedMessages(id) {
    return [...messageStore(id).values()].sort((a, b) => {
      if (a.id && b.id) return a.id - b.id;
      if (a.id) return -1;
      if (b.id) return 1;
      return a.created_at - b.created_at;
    });
  }

  function renderMessages({ scroll = "auto" } = {}) {
    if (!els.messages) return;
    const list = els.messages;
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const conv = state.conversations.get(state.selected);
    const nodes = sortedMessages(state.selected).map((message) => {
      const key = messageKey(message);
      const version = [message.content, message._local, message.status, message.content_attributes?.deleted,
        (message.attachments || []).map((a) => a.id || a.file_name).join(","), language()].join("|");
      let cached = messageEls.get(key);
      if (!cached || cached.version !== version) {
        cached = { el: buildMessage(message, conv), version };
        messageEls.set(key, cached);
      }
      return cached.el;
    });
    reconcile(list, nodes);
    if (scroll === "bottom" || (scroll === "auto" && nearBottom)) list.scrollTop = list.scrollHeight;
  }

  function senderName(message, conv) {
    if (message.message_type === MESSAGE.incoming) {
      return message.sender?.name || conv?.meta?.sender?.name || "";
    }
    if (message.sender_type === "agent_bot" || message.sender?.type === "agent_bot") return t("msg.bot");
    return message.sender?.available_name || message.sender?.name || (message._local ? me.name : "");
  }

  function emailFrame(message, conv) {
    const doc = "<!doctype html><html><head><meta charset=\"utf-8\">"
      + "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src https: data:; style-src 'unsafe-inline'\">"
      + "<base target=\"_blank\"><style>body{font:14px/1.5 system-ui,sans-serif;margin:8px;color:#1f2328;overflow-wrap:anywhere}"
      + "img{max-width:100%;height:auto}</style></head><body>" + message.html_content + "</body></html>";
    return h("iframe", {
      class: "email-frame", sandbox: "", srcdoc: doc, referrerpolicy: "no-referrer", loading: "lazy",
      title: t("conv.emailFrame", { name: senderName(message, conv) }),
    });
  }

  function statusLine(message) {
    if (message.message_type === MESSAGE.incoming || message.private) {
      if (!message._local) return null;
    }
    const local = message._local;
    let status = local || message.status;
    if (status === "delivered" || status === "read") status = "sent";
    if (!["pending", "sent", "failed"].includes(status)) return null;
    const label = t(`msg.${status}`);
    return h("span", { class: `msg-status status-${status}`, "data-status": status },
      h("span", { "aria-hidden": "true" }, status === "pending" ? "◷ " : status === "sent" ? "✓ " : "⚠ "),
      label,
      status === "failed" && message.external_error ? `: ${message.external_error}` : "",
      status === "failed" && local ? h("button", { type: "button", class: "link", onclick: () => postMessage(message) }, t("msg.retry")) : null);
  }

  function buildMessage(message, conv) {
    const key = messageKey(message);
    if (message.message_type === MESSAGE.activity) {
      return h("li", { class: "msg activity", dataset: { key } },
        h("span", { dir: "auto" }, message.content || ""), " ",
        h("time", { datetime: isoTime(message.created_at) }, formatTime(message.created_at)));
    }
    const incoming = message.message_type === MESSAGE.incoming;
    const kind = message.private ? "note" : incoming ? "incoming" : "outgoing";
    const deleted = message.content_attributes?.deleted;
    let body;
    if (deleted) body = h("p", { class: "deleted" }, t("msg.deleted"));
    else if (message.html_content) body = emailFrame(message, conv);
    else if (message.content || !(message.attachments || []).length) {
      body = h("p", { class: "text", dir: "auto" }, mentionParts(message.content || "").map((part) => (typeof part === "string"
        ? part : h("span", { class: "mention", dataset: { userId: part.mention.id } }, `@${part.mention.name}`))));
    }
    const attachments = (message.attachments || []).map((a) => (a.data_url ? attachmentView(a, api)
      : h("p", { class: "attachment" }, t("msg.attachment", { name: a.file_name || a.file_type || "" }))));
    return h("li", { class: `msg ${kind}`, dataset: { key, id: message.id || "" } },
      h("div", { class: "bubble" },
        h("div", { class: "msg-head" },
          h("span", { class: "sender", dir: "auto" }, senderName(message, conv)),
          message.private ? h("span", { class: "note-tag" }, h("span", { "aria-hidden": "true" }, "🔒 "), t("conv.privateNote")) : null,
          h("time", { datetime: isoTime(message.created_at), title: isoTime(message.created_at) }, formatTime(message.created_at))),
        body, attachments, statusLine(message)));
  }

  // -- composer ------------------------------------------------------------------------------
  function buildComposer() {
    // A rebuild (a resync, new settings) keeps what the agent was typing, and the focus.
    const previous = els.textarea && els.textarea.isConnected && els.composerFor === state.selected
      ? { value: els.textarea.value, focused: document.activeElement === els.textarea,
          start: els.textarea.selectionStart, end: els.textarea.selectionEnd } : null;
    const radio = (mode, label) => h("label", { class: `mode mode-${mode}` },
      h("input", { type: "radio", name: "composer-mode", value: mode, checked: state.mode === mode,
        onchange: () => setMode(mode) }), label);
    els.textarea = h("textarea", {
      id: "composer-text", rows: "3", dir: "auto", "aria-describedby": "composer-hint reply-window",
      placeholder: t(state.mode === "note" ? "composer.placeholderNote" : "composer.placeholderReply"),
      onkeydown: composerKeys, oninput: () => { typing(); canned.update(); mention.update(); }, onpaste: pasteFiles,
    });
    canned = cannedPicker(els.textarea, api);
    mention = mentionPicker(els.textarea, { agents: () => state.agents, enabled: () => state.mode === "note" });
    files = filePicker({ maxBytes: MAX_UPLOAD_BYTES, onError: announce });
    els.composerFor = state.selected;
    if (previous) {
      els.textarea.value = previous.value;
      if (previous.focused) queueMicrotask(() => {
        els.textarea.focus();
        els.textarea.setSelectionRange(previous.start, previous.end);
        canned.update(); mention.update();
      });
    }
    els.window = h("div", { class: "reply-window", id: "reply-window", role: "status" });
    els.composer = h("form", { class: `composer mode-${state.mode}`, onsubmit: (e) => { e.preventDefault(); send(); } },
      els.window,
      h("div", { class: "modes", role: "radiogroup", "aria-label": t("composer.mode") },
        radio("reply", t("composer.reply")), radio("note", t("composer.note"))),
      h("label", { for: "composer-text", class: "sr-only", id: "composer-label" },
        t(state.mode === "note" ? "composer.note" : "composer.label")),
      h("div", { class: "composer-input" }, els.textarea, canned.el, mention.el),
      h("div", { class: "composer-foot" },
        files.el,
        h("span", { class: "hint", id: "composer-hint" }, t("composer.hint"), " · ", t("composer.hintCanned"), " · ",
          t("composer.hintMention")),
        h("button", { type: "submit", class: "primary", id: "send" }, t("composer.send"))));
    return els.composer;
  }

  function pasteFiles(event) {
    const pasted = [...(event.clipboardData?.files || [])];
    if (pasted.length) {
      event.preventDefault();
      files.add(pasted);
    }
  }

  /** What the channel allows now: {blocked, text} while a reply window applies, else null. */
  function replyWindow(conv) {
    const closes = conv?.reply_window_closes_at;
    if (!closes && conv?.can_reply !== false) return null;
    const inbox = state.inboxes.get(conv.inbox_id) || conv.inbox || {};
    const channel = channelLabel(inbox.channel_type || conv.meta?.channel);
    const when = formatTime(closes);
    if (conv.can_reply === false) {
      return { blocked: true, text: t(TEMPLATE_CHANNELS.has(inbox.channel_type) ? "window.template" : "window.closed", { channel, when }) };
    }
    if (closes * 1000 <= Date.now()) return { blocked: false, text: t("window.tagged", { when }) };
    return { blocked: false, open: true, text: t("window.open", { when }) };
  }

  /** The reply-window note above the composer; where no free reply is allowed, only notes. */
  function renderWindow() {
    if (!els.window) return;
    const conv = state.conversations.get(state.selected);
    const info = replyWindow(conv);
    clearTimeout(windowTimer);
    els.window.dataset.state = info ? (info.blocked ? "closed" : info.open ? "open" : "tagged") : "none";
    replaceChildren(els.window, info ? [
      info.blocked ? h("strong", {}, t("window.closedTitle"), " ") : null, h("span", {}, info.text)] : []);
    els.window.hidden = !info;
    const replyRadio = els.composer.querySelector("input[value=reply]");
    replyRadio.disabled = Boolean(info?.blocked);
    replyRadio.closest("label").classList.toggle("disabled", Boolean(info?.blocked));
    // A note forced by a closed window goes back to a reply where replies are possible again.
    if (info?.blocked && state.mode === "reply") setMode("note", { forced: true });
    else if (!info?.blocked && state.modeForced) setMode("reply");
    if (info?.open) {
      // When the window closes, ask the server what is allowed then (a tag, a template, nothing).
      const wait = conv.reply_window_closes_at * 1000 - Date.now() + 1000;
      if (wait < 2 ** 31) windowTimer = setTimeout(() => fetchConversation(conv.id, { force: true }), wait);
    }
  }

  function setMode(mode, { focus = false, forced = false } = {}) {
    const refused = mode === "reply" && Boolean(replyWindow(state.conversations.get(state.selected))?.blocked);
    if (refused) mode = "note";
    state.mode = mode;
    state.modeForced = forced || refused;
    mention?.close();  // mentions are for private notes only
    if (!els.composer) return;
    els.composer.className = `composer mode-${mode}`;
    for (const input of els.composer.querySelectorAll("input[name=composer-mode]")) input.checked = input.value === mode;
    els.textarea.placeholder = t(mode === "note" ? "composer.placeholderNote" : "composer.placeholderReply");
    els.composer.querySelector("#composer-label").textContent = t(mode === "note" ? "composer.note" : "composer.label");
    if (focus) els.textarea.focus();
  }

  function composerKeys(event) {
    if (mention?.handleKey(event) || canned?.handleKey(event)) return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      send();
    } else if (event.key === "Escape") {
      event.preventDefault();
      els.textarea.blur();
      els.messages?.focus();
    }
  }

  function typing() {
    const id = state.selected;
    if (!id || !stream) return;
    const now = Date.now();
    if (now - typingSent > TYPING_SEND_MS) {
      typingSent = now;
      stream.send({ action: "typing", conversation_id: id, on: true, is_private: state.mode === "note" });
    }
    clearTimeout(typingIdle);
    typingIdle = setTimeout(() => stopTyping(id), TYPING_IDLE_MS);
  }

  function stopTyping(id = state.selected) {
    clearTimeout(typingIdle);
    if (typingSent && stream && id) stream.send({ action: "typing", conversation_id: id, on: false, is_private: state.mode === "note" });
    typingSent = 0;
  }

  function send() {
    const id = state.selected;
    // A note stores each picked @Name as Chatwoot's mention link.
    const content = state.mode === "note" && mention ? mention.encode(els.textarea.value) : els.textarea.value;
    const chosen = files ? files.files() : [];
    if (!id || (!content.trim() && !chosen.length)) return;
    const echo = uuid();
    const message = {
      echo_id: echo, conversation_id: id, content, private: state.mode === "note",
      message_type: MESSAGE.outgoing, created_at: Math.floor(Date.now() / 1000),
      sender: { available_name: me.name, type: "user" }, content_attributes: { echo_id: echo }, _local: "pending",
      _files: chosen, attachments: chosen.map((f) => ({ file_name: f.name, file_size: f.size, file_type: "file" })),
    };
    els.textarea.value = "";
    files?.clear();
    mention?.reset();
    stopTyping(id);
    addMessage(message, { render: false });
    renderMessages({ scroll: "bottom" });
    postMessage(message);
  }

  async function postMessage(message) {
    const store = messageStore(message.conversation_id);
    const key = `e${message.echo_id}`;
    if (store.has(key)) store.get(key)._local = "pending";
    renderMessages({ scroll: "auto" });
    try {
      const path = `/conversations/${message.conversation_id}/messages`;
      let saved;
      if (message._files?.length) {
        const form = new FormData();
        if (message.content) form.append("content", message.content);
        form.append("private", String(message.private));
        form.append("message_type", "outgoing");
        form.append("echo_id", message.echo_id);
        for (const file of message._files) form.append("attachments[]", file, file.name);
        saved = await api.upload(path, form);
      } else {
        saved = await api.post(path, {
          content: message.content, private: message.private, message_type: "outgoing", echo_id: message.echo_id,
        });
      }
      addMessage({ ...saved, _local: "sent" });
      bumpConversation(saved);
    } catch (error) {
      const pending = store.get(key);
      if (pending) {
        pending._local = "failed";
        pending.external_error = error.message;
      }
      renderMessages({ scroll: "auto" });
    }
  }

  function renderTyping() {
    if (!els.typing) return;
    const who = state.typing.get(state.selected);
    els.typing.textContent = who ? t("conv.typing", { name: who.name }) : "";
  }

  // -- live -----------------------------------------------------------------------------------
  function bumpConversation(message) {
    const conv = state.conversations.get(message.conversation_id);
    if (!conv) return false;
    const update = { id: conv.id };
    const embedded = message.conversation || {};
    for (const field of ["status", "assignee_id", "team_id", "waiting_since", "first_reply_created_at"]) {
      if (field in embedded) update[field] = embedded[field];
    }
    update.last_activity_at = Math.max(conv.last_activity_at || 0, embedded.last_activity_at || message.created_at || 0);
    const known = conv.last_non_activity_message?.id || 0;
    if (message.message_type !== MESSAGE.activity && message.id > known) {
      update.last_non_activity_message = message;
      if (message.message_type === MESSAGE.incoming && state.selected !== conv.id) {
        update.unread_count = (conv.unread_count || 0) + 1;
      }
    }
    upsert(update);
    return true;
  }

  function onFrame(frame) {
    if (!state.ready) { state.buffered.push(frame); return; }
    const data = frame.data || {};
    switch (frame.event) {
      case "message.created":
      case "message.updated": {
        const id = data.conversation_id;
        if (state.messages.has(id)) addMessage(data);
        if (frame.event === "message.created") {
          if (!bumpConversation(data)) fetchConversation(id);
          if (data.private && data.sender?.id !== me.id && mentions(data.content, me)) {
            notifier.notify(t("notify.mention", { id }), plainMentions(data.content).slice(0, 140), `mention-${data.id}`,
              () => select(id));
          }
          if (data.message_type === MESSAGE.incoming) {
            state.typing.delete(id);
            renderTyping();
            announce(t("conv.newMessage", { name: data.sender?.name || "" }));
            if (state.selected === id) markSeen(id);
          }
        }
        break;
      }
      case "conversation.created":
        notifier.notify(t("notify.newConversation", { name: data.meta?.sender?.name || `#${data.id}` }),
          state.inboxes.get(data.inbox_id)?.name || "", `conversation-${data.id}`, () => select(data.id));
        upsert(data);
        refreshCounts();
        break;
      case "conversation.updated":
      case "conversation.status_changed":
      case "assignee.changed":
      case "team.changed":
        upsert(data);
        refreshCounts();
        break;
      case "conversation.typing_on":
      case "conversation.typing_off":
        showTyping(frame.event === "conversation.typing_on", data);
        break;
      case "contact.updated":
        for (const conv of state.conversations.values()) {
          if (conv.contact_id === data.id) upsert({ id: conv.id, meta: { ...conv.meta, sender: data } });
        }
        break;
      default:
        break;
    }
  }

  function showTyping(on, data) {
    const id = data.conversation?.id;
    const user = data.user || {};
    if (!id || (user.type === "user" && user.id === me.id)) return;
    const previous = state.typing.get(id);
    if (previous) clearTimeout(previous.timer);
    if (!on) {
      state.typing.delete(id);
    } else {
      let name = user.name;
      if (!name && user.type === "user") name = state.agents.find((a) => a.id === user.id)?.available_name;
      if (!name) name = state.conversations.get(id)?.meta?.sender?.name || "…";
      state.typing.set(id, { name, timer: setTimeout(() => { state.typing.delete(id); renderTyping(); }, TYPING_SHOW_MS) });
    }
    renderTyping();
  }

  async function resync() {
    state.messages.clear();
    messageEls.clear();
    await loadList();
    refreshCounts(0);
    if (state.selected) {
      const id = state.selected;
      state.selected = null;
      await select(id);
    }
  }

  // -- keyboard --------------------------------------------------------------------------------
  function shortcuts(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (els.dialog?.open) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable], dialog")) return;
    switch (event.key) {
      case "j": event.preventDefault(); move(1); break;
      case "k": event.preventDefault(); move(-1); break;
      case "r": if (state.selected) { event.preventDefault(); setMode("reply", { focus: true }); } break;
      case "n": if (state.selected) { event.preventDefault(); setMode("note", { focus: true }); } break;
      case "e": if (state.selected) { event.preventDefault(); toggleStatus(state.selected); } break;
      case "?": event.preventDefault(); openShortcuts(); break;
      default: break;
    }
  }

  // -- start -------------------------------------------------------------------------------------
  async function start() {
    build();
    document.addEventListener("keydown", shortcuts);
    let since = null;
    try {
      since = (await api.get("/stream/position")).seq;
    } catch { /* the stream then starts live-only */ }
    stream = new LiveStream({
      api, accountId: session.accountId, since, onFrame, onStatus: setLive, onResync: resync,
    });
    stream.start();
    // The list first: it is what the agent waits for; on a busy server the four calls
    // below would otherwise share its time (rows show the inbox from the list's own data).
    await loadList();
    const [agents, inboxes, labels, teams] = await Promise.allSettled([
      api.get("/agents"), api.get("/inboxes"), api.get("/labels"), api.get("/teams"),
    ]);
    if (teams.status === "fulfilled") state.teams = teams.value;
    if (agents.status === "fulfilled") state.agents = agents.value;
    if (inboxes.status === "fulfilled") for (const inbox of inboxes.value.payload) state.inboxes.set(inbox.id, inbox);
    if (labels.status === "fulfilled") state.labels = labels.value.payload;
    renderInboxFilter();
    rows.clear();
    renderList();
    renderConversationHeader();  // a conversation opened meanwhile gets the agents, teams and labels
    state.ready = true;
    countdownTimer = setInterval(renderList, 30_000);  // rows whose countdown changed are drawn again
    for (const frame of state.buffered.splice(0)) onFrame(frame);
    const wanted = /^#\/conversations\/(\d+)$/.exec(location.hash);
    if (wanted) select(Number(wanted[1]));
    else renderConversation();
  }

  function stop() {
    document.removeEventListener("keydown", shortcuts);
    stream?.stop();
    clearTimeout(countsTimer);
    clearTimeout(seenTimer);
    clearTimeout(windowTimer);
    clearInterval(countdownTimer);
    seller?.stop();
  }

  // Exposed for the browser tests and for debugging from the console.
  window.postroom = { state, get stream() { return stream; }, select, reload: resync, notifications: notifier.sent };
  start();
  return { stop };
}
