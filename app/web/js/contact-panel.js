// The contact panel beside a conversation: name, e-mail, phone, every channel identity,
// earlier conversations, and custom attributes (a marketplace's order numbers).

import { h, replaceChildren } from "./dom.js";
import { formatAgo, formatTime, isoTime, t } from "./i18n.js";

function attributeRows(attributes) {
  return Object.entries(attributes || {})
    .filter(([, value]) => value !== null && value !== undefined && value !== "")
    .map(([key, value]) => [h("dt", { dir: "auto" }, key.replace(/_/g, " ")),
      h("dd", { dir: "auto" }, typeof value === "object" ? JSON.stringify(value) : String(value))]);
}

/**
 * Build the panel for `conv` into `container`. `channelLabel` names a channel type;
 * `onOpen(id)` opens another conversation. Contact and history are fetched each time
 * (the contact may have changed); a newer call wins over a slower older one.
 */
export function contactPanel(container, api, { channelLabel, onOpen }) {
  let generation = 0;

  async function show(conv) {
    const mine = ++generation;
    const sender = conv?.meta?.sender;
    if (!sender?.id) { replaceChildren(container); return; }
    render(conv, sender, null, null);
    const [contact, history] = await Promise.allSettled([
      api.get(`/contacts/${sender.id}`), api.get(`/contacts/${sender.id}/conversations`),
    ]);
    if (mine !== generation) return;
    render(conv, contact.status === "fulfilled" ? contact.value.payload : sender,
      contact.status === "fulfilled" ? contact.value.payload.contact_inboxes || [] : [],
      history.status === "fulfilled" ? history.value.payload : []);
  }

  function render(conv, contact, identities, history) {
    const loading = identities === null;
    const earlier = (history || []).filter((c) => c.id !== conv.id);
    const field = (label, value, href) => [h("dt", {}, label),
      h("dd", { dir: "auto" }, value ? (href ? h("a", { href }, value) : value) : t("contact.none"))];
    const conversationAttributes = attributeRows(conv.custom_attributes);
    const contactAttributes = attributeRows(contact.custom_attributes);
    replaceChildren(container,
      h("h2", { class: "panel-title", id: "contact-title" }, t("contact.title")),
      h("p", { class: "contact-name" }, h("bdi", {}, contact.name || `#${contact.id}`)),
      h("dl", { class: "contact-fields" },
        field(t("contact.email"), contact.email, contact.email ? `mailto:${contact.email}` : null),
        field(t("contact.phone"), contact.phone_number, contact.phone_number ? `tel:${contact.phone_number}` : null)),
      conversationAttributes.length ? [
        h("h3", {}, t("contact.orderAttributes")),
        h("dl", { class: "attributes", id: "conversation-attributes" }, conversationAttributes)] : null,
      contactAttributes.length ? [
        h("h3", {}, t("contact.attributes")),
        h("dl", { class: "attributes", id: "contact-attributes" }, contactAttributes)] : null,
      h("h3", {}, t("contact.identities")),
      loading ? h("p", { class: "muted" }, t("contact.loading")) : h("ul", { class: "identities" },
        identities.map((identity) => h("li", {},
          h("span", { class: "channel-tag" }, channelLabel(identity.inbox?.channel_type)), " ",
          h("bdi", {}, identity.inbox?.name || ""), " ",
          h("code", { dir: "ltr" }, identity.source_id)))),
      h("h3", {}, t("contact.earlier")),
      loading ? null : earlier.length ? h("ul", { class: "earlier" }, earlier.map((c) => h("li", {},
        h("button", { type: "button", class: "link earlier-link", onclick: () => onOpen(c.id) },
          `#${c.id}`, " ", h("span", { class: `status-badge status-${c.status}` }, t(`status.${c.status}`)), " ",
          h("span", { dir: "auto", class: "earlier-preview" }, (c.last_non_activity_message?.content || "").slice(0, 80)), " ",
          h("time", { datetime: isoTime(c.last_activity_at), title: formatTime(c.last_activity_at) }, formatAgo(c.last_activity_at))))))
        : h("p", { class: "muted" }, t("contact.noEarlier")));
  }

  return { show };
}
