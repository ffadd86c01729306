// The seller view: per marketplace inbox, the conversations at risk of passing the
// marketplace's reply rule, soonest deadline first, with the marketplace's own
// response-rate figures (GET …/sla/at_risk and …/sla/marketplace_scores).

import { h, replaceChildren } from "./dom.js";
import { language, t } from "./i18n.js";

// Look this far ahead: eBay allows 3 business days, so 3 days is not enough over a weekend.
const WITHIN = "5d";
const REFRESH_MS = 60_000;

/** "2 h 5 min" in the interface language. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(Math.abs(seconds)));
  const unit = (value, name) => new Intl.NumberFormat(language(), { style: "unit", unit: name, unitDisplay: "short" }).format(value);
  const days = Math.floor(s / 86400), hours = Math.floor((s % 86400) / 3600), minutes = Math.floor((s % 3600) / 60);
  if (days) return [unit(days, "day"), hours ? unit(hours, "hour") : null].filter(Boolean).join(" ");
  if (hours) return [unit(hours, "hour"), minutes ? unit(minutes, "minute") : null].filter(Boolean).join(" ");
  return unit(minutes, "minute");
}

/** The risk band of a deadline `secondsLeft` away (as the SLA risk view bands it). */
export function riskBand(secondsLeft) {
  return secondsLeft < 0 ? "breached" : secondsLeft < 3600 ? "critical" : secondsLeft < 6 * 3600 ? "high" : "ok";
}

function percent(value) {
  return value == null ? "—" : new Intl.NumberFormat(language(), { style: "percent", maximumFractionDigits: 1 }).format(value);
}

function scoreFigures(score) {
  if (!score?.scores?.length) return h("p", { class: "muted" }, t("seller.noData"));
  return h("dl", { class: "scores" }, score.scores.map((entry) => {
    const late = score.metric === "late_response_rate";
    return [
      h("dt", {}, t(late ? "seller.lateRate" : "seller.rate", { days: entry.window_days })),
      h("dd", { class: "score-value", dataset: { metric: score.metric } },
        h("strong", {}, percent(entry[score.metric])), " ",
        h("span", { class: "muted" }, t("seller.judged", { count: entry.messages })))];
  }));
}

/** Mount into `container`; `onOpen(id)` opens a conversation. Returns {refresh, stop}. */
export function sellerView(container, api, { channelLabel, inboxName, onOpen }) {
  let data = { scores: [], rows: [], loadedAt: Date.now() / 1000 };
  let ticker = null;
  let refresher = null;

  async function refresh() {
    const [scores, risk] = await Promise.all([
      api.get("/sla/marketplace_scores"), api.get(`/sla/at_risk?within=${WITHIN}`),
    ]);
    data = { scores: scores.payload, rows: risk.payload, loadedAt: Date.now() / 1000 };
    render();
  }

  function render() {
    const now = Date.now() / 1000;
    const marketplaces = new Map(data.scores.map((s) => [s.inbox_id, s]));
    const groups = new Map([...marketplaces.keys()].map((id) => [id, []]));
    for (const row of data.rows) {
      if (groups.has(row.inbox_id) && row.conversation_status !== "resolved") groups.get(row.inbox_id).push(row);
    }
    const sections = [...groups.entries()].map(([inboxId, rows]) => {
      const score = marketplaces.get(inboxId);
      rows.sort((a, b) => a.due_at - b.due_at);
      const name = inboxName?.(inboxId) || rows[0]?.inbox_name || `#${inboxId}`;
      return h("section", { class: "marketplace", dataset: { inbox: inboxId, channel: score.channel_type } },
        h("header", { class: "marketplace-head" },
          h("h3", {}, h("span", { class: "channel-tag" }, channelLabel(score.channel_type)), " ", h("bdi", {}, name)),
          score.rule ? h("p", { class: "muted rule" }, score.rule) : null,
          scoreFigures(score)),
        rows.length ? h("ol", { class: "risk-list" }, rows.map((row) => {
          const left = row.due_at - now;
          const band = riskBand(left);
          return h("li", {}, h("button", { type: "button", class: `risk-row risk-${band}`, dataset: { id: row.conversation_id },
            onclick: () => onOpen(row.conversation_id) },
          h("span", { class: "risk-id" }, `#${row.conversation_id}`),
          h("span", { class: "risk-rule", dir: "auto" }, row.rule),
          h("span", { class: `countdown risk-${band}` },
            t(left < 0 ? "seller.overdue" : "seller.left", { time: formatDuration(left) }))));
        })) : h("p", { class: "muted" }, t("seller.empty")));
    });
    replaceChildren(container,
      h("div", { class: "seller-view", id: "seller-view" },
        h("h2", {}, t("seller.title")),
        h("p", { class: "muted" }, t("seller.hint")),
        sections.length ? sections : h("p", { class: "muted" }, t("seller.empty"))));
  }

  async function start() {
    stop();
    ticker = setInterval(render, 30_000);
    refresher = setInterval(() => refresh().catch(() => {}), REFRESH_MS);
    await refresh();
  }

  function stop() {
    clearInterval(ticker);
    clearInterval(refresher);
  }

  return { start, stop, refresh };
}
