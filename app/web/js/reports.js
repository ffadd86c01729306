// The Reports section: what the team and the seller learn from the inbox, drawn as plain
// SVG from the reports API (GET /api/v2/accounts/{id}/reports…). No charting library:
// line charts, a weekday-by-hour heat map and bar lists are a few elements each.

import { h, replaceChildren } from "./dom.js";
import { addStrings, language, t } from "./i18n.js";
import { formatDuration } from "./seller.js";

const SVG = "http://www.w3.org/2000/svg";
const RANGES = [7, 30, 90];
const SERIES_COLORS = ["#2563eb", "#d97706", "#059669", "#db2777"];

/** An SVG element (h() makes HTML elements). */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  for (const child of children.flat(Infinity)) if (child !== null && child !== undefined && child !== false) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

function number(value) {
  return value == null ? "—" : new Intl.NumberFormat(language()).format(value);
}

function percent(value) {
  return value == null ? "—" : new Intl.NumberFormat(language(), { style: "percent", maximumFractionDigits: 1 }).format(value);
}

function day(unix) {
  return new Intl.DateTimeFormat(language(), { month: "short", day: "numeric" }).format(new Date(unix * 1000));
}

/** A line chart of one or more series sharing x (bucket timestamps); `format` labels the y axis. */
export function lineChart({ id, title, series, format = number }) {
  const width = 640, height = 220, left = 64, right = 28, top = 12, bottom = 28;
  const points = series[0]?.rows || [];
  const max = Math.max(1, ...series.flatMap((one) => one.rows.map((r) => r.value || 0)));
  const x = (i) => left + (points.length < 2 ? 0 : (i * (width - left - right)) / (points.length - 1));
  const y = (v) => top + (height - top - bottom) * (1 - (v || 0) / max);
  const grid = [0, 0.5, 1].map((share) => [
    s("line", { x1: left, x2: width - right, y1: y(max * share), y2: y(max * share), class: "grid" }),
    s("text", { x: left - 6, y: y(max * share) + 4, "text-anchor": "end", class: "axis" }, format(max * share))]);
  const ticks = points.map((r, i) => (i % Math.max(1, Math.ceil(points.length / 6)) === 0
    ? s("text", { x: x(i), y: height - 8, "text-anchor": "middle", class: "axis" }, day(r.timestamp)) : null));
  const lines = series.map((one, k) => s("polyline", {
    class: "series", fill: "none", stroke: SERIES_COLORS[k % SERIES_COLORS.length], "stroke-width": 2,
    "data-series": one.key, points: one.rows.map((r, i) => `${x(i).toFixed(1)},${y(r.value).toFixed(1)}`).join(" ") }));
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart line-chart", id },
    s("title", {}, title), grid, ticks, lines);
  const legend = h("ul", { class: "legend" }, series.map((one, k) =>
    h("li", {}, h("span", { class: "swatch", style: `background:${SERIES_COLORS[k % SERIES_COLORS.length]}` }), one.label)));
  return h("figure", { class: "report-card" }, h("figcaption", {}, title), svg, legend);
}

/** Weekday × hour counts as shaded cells; weekdays in the interface language. */
export function heatMap({ id, title, matrix }) {
  const cell = 22, left = 64, top = 18;
  const max = Math.max(1, ...matrix.flat());
  const names = [...Array(7)].map((_, d) => new Intl.DateTimeFormat(language(), { weekday: "short" })
    .format(new Date(Date.UTC(2024, 0, 1 + d))));  // 2024-01-01 was a Monday
  const cells = matrix.flatMap((row, d) => row.map((value, hour) => s("rect", {
    x: left + hour * cell, y: top + d * cell, width: cell - 2, height: cell - 2, rx: 3, class: "cell",
    "data-day": d, "data-hour": hour, "data-value": value,
    "fill-opacity": value ? (0.15 + 0.85 * value / max).toFixed(3) : 0.04 }, s("title", {}, `${names[d]} ${hour}:00 — ${number(value)}`))));
  const rows = names.map((name, d) => s("text", { x: left - 6, y: top + d * cell + 15, "text-anchor": "end", class: "axis" }, name));
  const hours = [0, 6, 12, 18].map((hour) => s("text", { x: left + hour * cell + 4, y: 12, class: "axis" }, `${hour}`));
  const svg = s("svg", { viewBox: `0 0 ${left + 24 * cell} ${top + 7 * cell}`, role: "img", "aria-label": title,
    class: "chart heat-map", id }, s("title", {}, title), hours, rows, cells);
  return h("figure", { class: "report-card wide" }, h("figcaption", {}, title), svg);
}

/** Horizontal bars for labelled values. */
export function barList({ id, title, rows, format = number }) {
  const max = Math.max(1, ...rows.map((r) => r.value || 0));
  const width = 360, bar = 22;
  const svg = s("svg", { viewBox: `0 0 ${width} ${Math.max(1, rows.length) * bar + 4}`, role: "img", "aria-label": title,
    class: "chart bars", id }, s("title", {}, title),
  rows.map((r, i) => [
    s("text", { x: 0, y: i * bar + 15, class: "axis" }, r.label),
    s("rect", { x: 110, y: i * bar + 3, height: bar - 8, rx: 3, class: "bar", "data-value": r.value,
      width: Math.max(1, ((width - 170) * (r.value || 0)) / max) }),
    s("text", { x: 114 + ((width - 170) * (r.value || 0)) / max, y: i * bar + 15, class: "axis" }, format(r.value))]));
  return h("figure", { class: "report-card" }, h("figcaption", {}, title),
    rows.length ? svg : h("p", { class: "muted" }, t("reports.noData")));
}

function summaryCards(summary) {
  const cards = [
    ["conversations_count", number], ["incoming_messages_count", number], ["resolutions_count", number],
    ["avg_first_response_time", formatDuration], ["reply_time", formatDuration], ["avg_resolution_time", formatDuration],
  ];
  return h("dl", { class: "summary-cards", id: "report-summary" }, cards.map(([key, format]) => h("div", { class: "summary-card", dataset: { metric: key } },
    h("dt", {}, t(`reports.metric.${key}`)), h("dd", {}, format(summary[key] || 0)))));
}

/** Keep a "Reports" link in the inbox's top bar (it is rebuilt when the language changes). */
export function attachReportsLink(root, onOpen) {
  const place = () => {
    const bar = root.querySelector("header.topbar");
    if (!bar || bar.querySelector("#reports-link")) return;
    const link = h("a", { href: "#reports", id: "reports-link", class: "reports-link",
      onclick: (e) => { e.preventDefault(); onOpen(); } }, t("nav.reports"));
    bar.insertBefore(link, bar.querySelector(".spacer"));
  };
  const observer = new MutationObserver(place);
  observer.observe(root, { childList: true, subtree: false });
  place();
  return () => observer.disconnect();
}

function ensureStyles() {
  if (document.getElementById("reports-css")) return;
  document.head.append(h("link", { rel: "stylesheet", href: "/web/reports.css", id: "reports-css" }));
}

/** The Reports page in `root`; `onBack` returns to the inbox. Returns {stop}. */
export function mountReports(root, session, api, { onBack }) {
  ensureStyles();
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  let days = 30;
  let stopped = false;
  const v2 = (path, params = {}) => {
    const query = new URLSearchParams({ timezone: zone, ...params });
    return api.get(`/api/v2/accounts/${session.accountId}/reports${path}?${query}`, { account: false });
  };

  async function load() {
    const until = Math.floor(Date.now() / 1000);
    const since = until - days * 86400;
    const range = { since, until };
    const daily = (metric) => v2("", { ...range, metric, group_by: "day" });
    const [summary, conversations, incoming, firstResponse, replyTime, heat, channels, csat, rates, alerts] = await Promise.all([
      v2("/summary", range), daily("conversations_count"), daily("incoming_messages_count"),
      daily("avg_first_response_time"), daily("reply_time"), v2("/heatmap", { ...range, metric: "incoming_messages_count" }),
      v2("/channels", range), api.get(`/api/v2/accounts/${session.accountId}/reports/csat?since=${since}&until=${until}`, { account: false }),
      api.get(`/api/v2/accounts/${session.accountId}/reports/response_rates?since=${since}&until=${until}`, { account: false }),
      api.get(`/api/v2/accounts/${session.accountId}/reports/volume_alerts`, { account: false }),
    ]);
    return { summary, conversations, incoming, firstResponse, replyTime, heat, channels, csat, rates, alerts };
  }

  function render(data) {
    const rangeSelect = h("select", { id: "report-range", onchange: (e) => { days = Number(e.target.value); refresh(); } },
      RANGES.map((n) => h("option", { value: n, selected: n === days }, t("reports.lastDays", { days: n }))));
    const marketplaceRows = data.rates.marketplaces.flatMap((m) => m.scores.map((score) => ({
      label: `${m.inbox_name} · ${score.window_days}d`,
      value: m.metric === "late_response_rate" ? 1 - (score.late_response_rate || 0) : score[m.metric] })));
    const csatRows = ["1", "2", "3", "4", "5"].map((r) => ({ label: "★".repeat(Number(r)), value: data.csat.distribution[r] }));
    const alertList = data.alerts.payload.length
      ? h("ul", { class: "alert-list", id: "volume-alerts" }, data.alerts.payload.slice(0, 10).map((a) => h("li", {},
        t("reports.alert", { scope: a.value, observed: number(a.observed), usual: number(a.baseline_median) }))))
      : h("p", { class: "muted", id: "volume-alerts" }, t("reports.noAlerts"));
    replaceChildren(root,
      h("header", { class: "topbar" },
        h("span", { class: "brand" }, "Postroom"),
        h("span", { class: "account", dir: "auto" }, session.accountName || ""),
        h("span", { class: "spacer" }),
        h("a", { href: "#", id: "reports-back", class: "reports-link", onclick: (e) => { e.preventDefault(); onBack(); } }, t("nav.inbox"))),
      h("main", { class: "reports", id: "reports" },
        h("div", { class: "reports-head" }, h("h1", {}, t("nav.reports")),
          h("label", { for: "report-range" }, t("reports.range")), rangeSelect,
          h("span", { class: "muted" }, zone)),
        summaryCards(data.summary),
        h("div", { class: "report-grid" },
          lineChart({ id: "chart-volume", title: t("reports.volume"), series: [
            { key: "conversations", label: t("reports.metric.conversations_count"), rows: data.conversations },
            { key: "incoming", label: t("reports.metric.incoming_messages_count"), rows: data.incoming }] }),
          lineChart({ id: "chart-times", title: t("reports.times"), format: formatDuration, series: [
            { key: "first_response", label: t("reports.metric.avg_first_response_time"), rows: data.firstResponse },
            { key: "reply_time", label: t("reports.metric.reply_time"), rows: data.replyTime }] }),
          heatMap({ id: "chart-heatmap", title: t("reports.heatmap"), matrix: data.heat.matrix }),
          barList({ id: "chart-channels", title: t("reports.channels"),
            rows: data.channels.payload.map((r) => ({ label: r.channel_type, value: r.value })) }),
          barList({ id: "chart-csat", title: t("reports.csat", { average: data.csat.average ?? "—" }), rows: csatRows }),
          barList({ id: "chart-marketplaces", title: t("reports.marketplaces"), rows: marketplaceRows, format: percent }),
          h("section", { class: "report-card" }, h("h2", {}, t("reports.alerts")), alertList))));
    root.removeAttribute("aria-busy");
  }

  async function refresh() {
    try {
      const data = await load();
      if (!stopped) render(data);
    } catch (error) {
      if (!stopped) replaceChildren(root, h("p", { class: "form-error", role: "alert" }, t("reports.error", { message: error.message })));
    }
  }

  refresh();
  return { stop: () => { stopped = true; } };
}

addStrings({
  en: {
    "reports.range": "Period", "reports.lastDays": "Last {days} days", "reports.volume": "Volume per day",
    "reports.times": "Response times per day", "reports.heatmap": "Incoming messages by weekday and hour",
    "reports.channels": "Incoming messages by channel", "reports.csat": "Satisfaction (average {average})",
    "reports.marketplaces": "Seller response rate per marketplace", "reports.alerts": "Unusual volume",
    "reports.alert": "{scope}: {observed} conversations, usually {usual}", "reports.noAlerts": "Nothing unusual.",
    "reports.noData": "No data in this period.", "reports.error": "Could not load the reports: {message}",
    "reports.metric.conversations_count": "Conversations", "reports.metric.incoming_messages_count": "Incoming messages",
    "reports.metric.resolutions_count": "Resolved", "reports.metric.avg_first_response_time": "First response",
    "reports.metric.reply_time": "Reply time", "reports.metric.avg_resolution_time": "Resolution time",
  },
  th: {
    "reports.range": "ช่วงเวลา", "reports.lastDays": "{days} วันล่าสุด", "reports.volume": "ปริมาณต่อวัน",
    "reports.times": "เวลาตอบกลับต่อวัน", "reports.heatmap": "ข้อความเข้าตามวันและชั่วโมง",
    "reports.channels": "ข้อความเข้าตามช่องทาง", "reports.csat": "ความพึงพอใจ (เฉลี่ย {average})",
    "reports.marketplaces": "อัตราการตอบกลับของร้านค้าในแต่ละมาร์เก็ตเพลส", "reports.alerts": "ปริมาณผิดปกติ",
    "reports.alert": "{scope}: {observed} การสนทนา ปกติ {usual}", "reports.noAlerts": "ไม่มีสิ่งผิดปกติ",
    "reports.noData": "ไม่มีข้อมูลในช่วงนี้", "reports.error": "โหลดรายงานไม่ได้: {message}",
    "reports.metric.conversations_count": "การสนทนา", "reports.metric.incoming_messages_count": "ข้อความเข้า",
    "reports.metric.resolutions_count": "แก้ไขแล้ว", "reports.metric.avg_first_response_time": "ตอบกลับครั้งแรก",
    "reports.metric.reply_time": "เวลาตอบกลับ", "reports.metric.avg_resolution_time": "เวลาแก้ไข",
  },
  vi: {
    "reports.range": "Khoảng thời gian", "reports.lastDays": "{days} ngày qua", "reports.volume": "Lượng theo ngày",
    "reports.times": "Thời gian phản hồi theo ngày", "reports.heatmap": "Tin nhắn đến theo thứ và giờ",
    "reports.channels": "Tin nhắn đến theo kênh", "reports.csat": "Mức hài lòng (trung bình {average})",
    "reports.marketplaces": "Tỷ lệ phản hồi của người bán theo sàn", "reports.alerts": "Lượng bất thường",
    "reports.alert": "{scope}: {observed} cuộc trò chuyện, thường là {usual}", "reports.noAlerts": "Không có gì bất thường.",
    "reports.noData": "Không có dữ liệu trong khoảng này.", "reports.error": "Không tải được báo cáo: {message}",
    "reports.metric.conversations_count": "Cuộc trò chuyện", "reports.metric.incoming_messages_count": "Tin nhắn đến",
    "reports.metric.resolutions_count": "Đã giải quyết", "reports.metric.avg_first_response_time": "Phản hồi đầu tiên",
    "reports.metric.reply_time": "Thời gian trả lời", "reports.metric.avg_resolution_time": "Thời gian giải quyết",
  },
  fa: {
    "reports.range": "بازه", "reports.lastDays": "{days} روز گذشته", "reports.volume": "حجم روزانه",
    "reports.times": "زمان پاسخ روزانه", "reports.heatmap": "پیام‌های ورودی بر اساس روز هفته و ساعت",
    "reports.channels": "پیام‌های ورودی بر اساس کانال", "reports.csat": "رضایت (میانگین {average})",
    "reports.marketplaces": "نرخ پاسخ فروشنده در هر بازارگاه", "reports.alerts": "حجم غیرعادی",
    "reports.alert": "{scope}: {observed} گفتگو، معمولاً {usual}", "reports.noAlerts": "چیز غیرعادی‌ای نیست.",
    "reports.noData": "در این بازه داده‌ای نیست.", "reports.error": "بارگیری گزارش‌ها ممکن نشد: {message}",
    "reports.metric.conversations_count": "گفتگوها", "reports.metric.incoming_messages_count": "پیام‌های ورودی",
    "reports.metric.resolutions_count": "حل‌شده", "reports.metric.avg_first_response_time": "نخستین پاسخ",
    "reports.metric.reply_time": "زمان پاسخ", "reports.metric.avg_resolution_time": "زمان حل",
  },
  "zh-CN": {
    "reports.range": "时间范围", "reports.lastDays": "最近 {days} 天", "reports.volume": "每日数量",
    "reports.times": "每日响应时间", "reports.heatmap": "按星期和小时的来信", "reports.channels": "各渠道来信",
    "reports.csat": "满意度（平均 {average}）", "reports.marketplaces": "各平台卖家回复率", "reports.alerts": "异常数量",
    "reports.alert": "{scope}：{observed} 个会话，通常 {usual} 个", "reports.noAlerts": "没有异常。",
    "reports.noData": "此期间没有数据。", "reports.error": "无法加载报表：{message}",
    "reports.metric.conversations_count": "会话", "reports.metric.incoming_messages_count": "来信",
    "reports.metric.resolutions_count": "已解决", "reports.metric.avg_first_response_time": "首次响应",
    "reports.metric.reply_time": "回复时间", "reports.metric.avg_resolution_time": "解决时间",
  },
});
