// The live-chat window (inside the iframe the SDK adds). Talks to /widget/api/* on
// Postroom's origin; the visitor's token is kept in localStorage, so the conversation
// survives reloads of the host page.

const params = new URLSearchParams(location.search);
const websiteToken = params.get("website_token") || "";
const locale = (params.get("locale") || navigator.language || "en").toLowerCase();
const pageUrl = params.get("page") || "";
const STORAGE_KEY = `postroom.widget.${websiteToken}`;

const STRINGS = {
  en: { title: "Chat with us", placeholder: "Type your message…", send: "Send", label: "Message", close: "Close chat",
    sending: "Sending…", sent: "Sent", failed: "Not sent", retry: "Retry", you: "You", typing: "{name} is typing…",
    agent: "Support", resolved: "This conversation was marked resolved. Write again any time.",
    offline: "Reconnecting…", error: "Something went wrong. Please try again.", messages: "Messages" },
  th: { title: "แชทกับเรา", placeholder: "พิมพ์ข้อความ…", send: "ส่ง", label: "ข้อความ", close: "ปิดแชท",
    sending: "กำลังส่ง…", sent: "ส่งแล้ว", failed: "ส่งไม่สำเร็จ", retry: "ลองอีกครั้ง", you: "คุณ", typing: "{name} กำลังพิมพ์…",
    agent: "ฝ่ายบริการลูกค้า", resolved: "บทสนทนานี้ได้รับการแก้ไขแล้ว เขียนมาใหม่ได้ทุกเมื่อ",
    offline: "กำลังเชื่อมต่อใหม่…", error: "เกิดข้อผิดพลาด โปรดลองอีกครั้ง", messages: "ข้อความ" },
  vi: { title: "Trò chuyện với chúng tôi", placeholder: "Nhập tin nhắn…", send: "Gửi", label: "Tin nhắn", close: "Đóng trò chuyện",
    sending: "Đang gửi…", sent: "Đã gửi", failed: "Chưa gửi được", retry: "Thử lại", you: "Bạn", typing: "{name} đang nhập…",
    agent: "Hỗ trợ", resolved: "Cuộc trò chuyện đã được giải quyết. Bạn có thể nhắn lại bất cứ lúc nào.",
    offline: "Đang kết nối lại…", error: "Đã xảy ra lỗi. Vui lòng thử lại.", messages: "Tin nhắn" },
  fa: { title: "با ما گفتگو کنید", placeholder: "پیام خود را بنویسید…", send: "ارسال", label: "پیام", close: "بستن گفتگو",
    sending: "در حال ارسال…", sent: "ارسال شد", failed: "ارسال نشد", retry: "تلاش دوباره", you: "شما", typing: "{name} در حال نوشتن است…",
    agent: "پشتیبانی", resolved: "این گفتگو حل شد. هر وقت خواستید دوباره بنویسید.",
    offline: "در حال اتصال دوباره…", error: "خطایی رخ داد. دوباره تلاش کنید.", messages: "پیام‌ها" },
  zh: { title: "在线咨询", placeholder: "输入消息…", send: "发送", label: "消息", close: "关闭聊天",
    sending: "正在发送…", sent: "已发送", failed: "发送失败", retry: "重试", you: "您", typing: "{name} 正在输入…",
    agent: "客服", resolved: "此会话已解决。如有需要，随时再次留言。",
    offline: "正在重新连接…", error: "出错了，请重试。", messages: "消息" },
};
// The pre-chat form and the e-mail request when nobody answers.
const FORM_STRINGS = {
  en: { name: "Name", email: "Email", start: "Start chat", prechat: "Tell us who you are, so we can follow up.",
    emailInvalid: "Please enter a valid email address.", emailRequired: "Please enter your email address.",
    collect: "Nobody is free to answer right now. Leave your email and we will reply there too.", save: "Save",
    saved: "Thanks! We will also reply to {email}." },
  th: { name: "ชื่อ", email: "อีเมล", start: "เริ่มแชท", prechat: "บอกเราว่าคุณคือใคร เพื่อให้เราติดต่อกลับได้",
    emailInvalid: "โปรดกรอกอีเมลที่ถูกต้อง", emailRequired: "โปรดกรอกอีเมลของคุณ",
    collect: "ขณะนี้ยังไม่มีเจ้าหน้าที่ว่าง ฝากอีเมลไว้ แล้วเราจะตอบกลับทางอีเมลด้วย", save: "บันทึก",
    saved: "ขอบคุณค่ะ เราจะตอบกลับไปที่ {email} ด้วย" },
  vi: { name: "Tên", email: "Email", start: "Bắt đầu trò chuyện", prechat: "Cho chúng tôi biết bạn là ai để chúng tôi liên hệ lại.",
    emailInvalid: "Vui lòng nhập địa chỉ email hợp lệ.", emailRequired: "Vui lòng nhập email của bạn.",
    collect: "Hiện chưa có nhân viên nào rảnh. Hãy để lại email, chúng tôi sẽ trả lời cả qua email.", save: "Lưu",
    saved: "Cảm ơn bạn! Chúng tôi cũng sẽ trả lời đến {email}." },
  fa: { name: "نام", email: "ایمیل", start: "شروع گفتگو", prechat: "خودتان را معرفی کنید تا بتوانیم پیگیری کنیم.",
    emailInvalid: "لطفاً یک نشانی ایمیل درست وارد کنید.", emailRequired: "لطفاً ایمیل خود را وارد کنید.",
    collect: "اکنون کسی برای پاسخ آزاد نیست. ایمیل خود را بگذارید تا پاسخ را به آنجا هم بفرستیم.", save: "ذخیره",
    saved: "سپاس! پاسخ را به {email} هم می‌فرستیم." },
  zh: { name: "姓名", email: "邮箱", start: "开始聊天", prechat: "请告诉我们您是谁，方便我们跟进。",
    emailInvalid: "请输入有效的邮箱地址。", emailRequired: "请输入您的邮箱地址。",
    collect: "暂时没有客服有空。留下邮箱，我们也会通过邮件回复您。", save: "保存",
    saved: "谢谢！我们也会回复到 {email}。" },
};
for (const [code, table] of Object.entries(FORM_STRINGS)) Object.assign(STRINGS[code], table);
// The satisfaction survey's link (app/reports/csat.py).
STRINGS["en"].rate = "Rate this conversation";
STRINGS["th"].rate = "ให้คะแนนการสนทนานี้";
STRINGS["vi"].rate = "Đánh giá cuộc trò chuyện";
STRINGS["fa"].rate = "به این گفتگو امتیاز دهید";
STRINGS["zh"].rate = "为本次对话评分";
// Files: the composer's picker and attachments in the conversation.
const FILE_STRINGS = {
  en: { attach: "Attach files", remove: "Remove {name}", tooLarge: "{name} is larger than {size}",
    download: "Download {name}", image: "Image: {name}" },
  th: { attach: "แนบไฟล์", remove: "นำ {name} ออก", tooLarge: "{name} ใหญ่เกิน {size}",
    download: "ดาวน์โหลด {name}", image: "รูปภาพ: {name}" },
  vi: { attach: "Đính kèm tệp", remove: "Bỏ {name}", tooLarge: "{name} lớn hơn {size}",
    download: "Tải xuống {name}", image: "Hình ảnh: {name}" },
  fa: { attach: "پیوست فایل", remove: "حذف {name}", tooLarge: "{name} بزرگ‌تر از {size} است",
    download: "دریافت {name}", image: "تصویر: {name}" },
  zh: { attach: "添加文件", remove: "移除 {name}", tooLarge: "{name} 超过 {size}",
    download: "下载 {name}", image: "图片：{name}" },
};
for (const [code, table] of Object.entries(FILE_STRINGS)) Object.assign(STRINGS[code], table);
const EMAIL = /^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$/;
const DEFAULT_MAX_UPLOAD = 25 * 1024 * 1024;  // the server's default; config.max_upload_bytes says the real one

const lang = locale.split("-")[0] in STRINGS ? locale.split("-")[0] : "en";
function t(key, values = {}) {
  return (STRINGS[lang][key] || STRINGS.en[key]).replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");
}

const els = {
  title: document.getElementById("title"),
  tagline: document.getElementById("tagline"),
  messages: document.getElementById("messages"),
  typing: document.getElementById("typing"),
  notice: document.getElementById("notice"),
  form: document.getElementById("composer"),
  text: document.getElementById("text"),
  send: document.getElementById("send"),
  close: document.getElementById("close"),
  prechat: document.getElementById("prechat"),
  prechatName: document.getElementById("prechat-name"),
  prechatEmail: document.getElementById("prechat-email"),
  prechatError: document.getElementById("prechat-error"),
  collect: document.getElementById("collect"),
  collectEmail: document.getElementById("collect-email"),
  collectError: document.getElementById("collect-error"),
  files: document.getElementById("files"),
  attach: document.getElementById("attach"),
  chosen: document.getElementById("chosen-files"),
};

const state = {
  visitor: loadVisitor(),
  messages: new Map(),   // key -> message
  lastId: 0,
  ws: null,
  attempt: 0,
  open: false,
  unread: 0,
  caughtUp: false,
  greeting: null,
  typingTimer: null,
  typingSent: 0,
  typingIdle: null,
  config: {},
  collectTimer: null,
  collectShown: false,
  chosen: [],            // files picked for the next message
  blobs: new Map(),      // attachment url -> Promise<object URL>
};

function loadVisitor() {
  try { return JSON.parse(localStorage.getItem(STORAGE_KEY)); } catch { return null; }
}
function saveVisitor(visitor) {
  state.visitor = visitor;
  try { localStorage.setItem(STORAGE_KEY, JSON.stringify(visitor)); } catch { /* storage blocked: session only */ }
}
function forgetVisitor() {
  state.visitor = null;
  try { localStorage.removeItem(STORAGE_KEY); } catch { /* nothing kept */ }
}
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
function toParent(message) {
  if (window.parent !== window) window.parent.postMessage(message, "*");
}

async function call(method, path, body, extraHeaders = {}) {
  const headers = { Accept: "application/json", ...extraHeaders };
  if (state.visitor) headers["X-Widget-Token"] = state.visitor.token;
  const form = body instanceof FormData;
  if (body !== undefined && !form) headers["Content-Type"] = "application/json";
  const payload = body === undefined || form ? body : JSON.stringify(body);
  const response = await fetch(path, { method, headers, body: payload });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error((data && data.message) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

// -- rendering -------------------------------------------------------------------------------
function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : lang;
  document.documentElement.dir = lang === "fa" ? "rtl" : "ltr";
  els.text.placeholder = t("placeholder");
  els.send.textContent = t("send");
  document.getElementById("text-label").textContent = t("label");
  els.close.setAttribute("aria-label", t("close"));
  els.messages.setAttribute("aria-label", t("messages"));
  els.title.textContent = t("title");
  document.getElementById("prechat-name-label").textContent = t("name");
  document.getElementById("prechat-email-label").textContent = t("email");
  document.getElementById("prechat-start").textContent = t("start");
  document.getElementById("collect-label").textContent = t("email");
  document.getElementById("collect-save").textContent = t("save");
  document.getElementById("collect-text").textContent = t("collect");
  els.attach.setAttribute("aria-label", t("attach"));
  els.attach.title = t("attach");
}

function applyConfig(config) {
  els.title.textContent = config.welcome_title || t("title");
  els.tagline.textContent = config.welcome_tagline || "";
  if (/^#[0-9a-f]{6}$/i.test(config.widget_color || "")) {
    document.documentElement.style.setProperty("--brand", config.widget_color);
    // Dark text on a light brand colour, white on a dark one (WCAG contrast).
    document.documentElement.style.setProperty("--brand-text", luminance(config.widget_color) > 0.21 ? "#1f2328" : "#ffffff");
  }
  state.greeting = config.greeting_message || null;
  state.config = config;
  toParent({ type: "postroom:config", color: config.widget_color });
  if (config.pre_chat_form_enabled && !state.visitor) showPrechat();
  render();
}

// -- the pre-chat form, and asking for an e-mail when nobody answers ----------------------------
function showPrechat() {
  document.getElementById("prechat-message").textContent = state.config.pre_chat_message || t("prechat");
  els.prechatEmail.required = Boolean(state.config.pre_chat_require_email);
  els.prechat.hidden = false;
  els.form.hidden = true;
}

/** The typed address, or null (empty and optional); shows why and throws when it is not usable. */
function checkedEmail(input, errorEl, required) {
  const value = input.value.trim();
  errorEl.textContent = "";
  input.removeAttribute("aria-invalid");
  if (!value && !required) return null;
  if (!value || !EMAIL.test(value)) {
    errorEl.textContent = t(value ? "emailInvalid" : "emailRequired");
    input.setAttribute("aria-invalid", "true");
    input.focus();
    throw new Error("invalid email");
  }
  return value;
}

/**
 * Both e-mail forms (the pre-chat form, and the request when nobody answers): check the
 * address, run `save`, show 422 as "invalid address" and anything else as an error.
 */
async function submitEmailForm({ input, errorEl, required, save }) {
  let email;
  try { email = checkedEmail(input, errorEl, required); } catch { return; }
  try {
    await save(email);
  } catch (error) {
    errorEl.textContent = error.status === 422 ? t("emailInvalid") : t("error");
  }
}

async function startFromPrechat(email) {
  await ensureVisitor({ name: els.prechatName.value.trim() || undefined, email: email || undefined });
  els.prechat.hidden = true;
  els.form.hidden = false;
  els.text.focus();
}

function scheduleCollect() {
  if (!state.config.continuity_via_email || state.visitor?.email || state.collectShown) return;
  clearTimeout(state.collectTimer);
  const after = Math.max(0, Number(state.config.email_collect_after_seconds ?? 60)) * 1000;
  state.collectTimer = setTimeout(() => {
    if (state.visitor?.email || state.collectShown) return;
    state.collectShown = true;
    els.collect.hidden = false;
  }, after);
}

function agentAnswered() {
  clearTimeout(state.collectTimer);
}

async function saveCollectedEmail(email) {
  const answer = await call("PATCH", "/widget/api/visitor", { email });
  saveVisitor({ ...state.visitor, email: answer.contact.email || email });
  document.getElementById("collect-text").textContent = t("saved", { email });
  els.collect.querySelector(".collect-row").hidden = true;
}

function luminance(hex) {
  const channel = (i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
}

function keyOf(message) {
  return message.id ? `m${message.id}` : `e${message.echo_id}`;
}

function addMessage(message, { live = false } = {}) {
  if (message.echo_id && state.messages.has(`e${message.echo_id}`)) state.messages.delete(`e${message.echo_id}`);
  const key = keyOf(message);
  const isNew = !state.messages.has(key);
  state.messages.set(key, { ...state.messages.get(key), ...message });
  if (message.id) state.lastId = Math.max(state.lastId, message.id);
  if (isNew && message.id && message.message_type !== "incoming") agentAnswered();
  if (live && isNew && message.id && message.message_type !== "incoming" && !message._local) {
    if (!state.open || document.visibilityState === "hidden") {
      state.unread += 1;
      toParent({ type: "postroom:unread", count: state.unread });
    }
    els.typing.textContent = "";
  }
  render();
}

function render() {
  const list = els.messages;
  const items = [];
  if (state.greeting) {
    items.push(bubble({ kind: "greeting", who: t("agent"), text: state.greeting }));
  }
  const sorted = [...state.messages.values()].sort((a, b) =>
    (a.id && b.id) ? a.id - b.id : a.id ? -1 : b.id ? 1 : a.created_at - b.created_at);
  for (const message of sorted) {
    const mine = message.message_type === "incoming";
    const status = message._local || (mine ? "sent" : null);
    const item = bubble({
      kind: mine ? "visitor" : "agent",
      who: mine ? null : (message.sender?.name || t("agent")),
      text: message.deleted ? "—" : (message.content || ""),
      id: message.id,
      status: mine ? status : null,
      retry: status === "failed" ? () => post(message) : null,
      time: message.created_at,
      attachments: message.attachments,
    });
    if (message.survey && !message.survey.answered) {  // satisfaction survey: 1–5 and a comment on its page
      const rate = document.createElement("a");
      rate.className = "survey-link";
      rate.href = message.survey.url;
      rate.target = "_blank";
      rate.rel = "noopener";
      rate.textContent = `★ ${t("rate")}`;
      item.append(rate);
    }
    items.push(item);
  }
  list.replaceChildren(...items);
  list.scrollTop = list.scrollHeight;
}

function bubble({ kind, who, text, id, status, retry, time, attachments }) {
  const li = document.createElement("li");
  li.className = `msg ${kind}`;
  if (id) li.dataset.id = id;
  if (who) {
    const name = document.createElement("span");
    name.className = "who";
    name.dir = "auto";
    name.textContent = who;
    li.append(name);
  }
  const p = document.createElement("p");
  p.className = "bubble";
  p.dir = "auto";
  p.textContent = text;
  if (text || !attachments?.length) li.append(p);
  for (const attachment of attachments || []) li.append(attachmentView(attachment));
  const meta = document.createElement("span");
  meta.className = "meta";
  const parts = [];
  if (time) parts.push(new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" }).format(new Date(time * 1000)));
  if (status) parts.push(t(status === "pending" ? "sending" : status));
  meta.textContent = parts.join(" · ");
  if (status) {
    meta.dataset.status = status;
    if (status === "failed") meta.classList.add("failed");
  }
  if (retry) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = t("retry");
    button.addEventListener("click", retry);
    meta.append(" ", button);
  }
  if (parts.length) li.append(meta);
  return li;
}

// -- files -----------------------------------------------------------------------------------------
function formatSize(bytes) {
  if (bytes == null) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10240 ? 1 : 0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** A stored file, fetched with the visitor's token and shown from a blob: URL. */
function objectUrl(url) {
  if (!state.blobs.has(url)) {
    state.blobs.set(url, fetch(url, { headers: { "X-Widget-Token": state.visitor?.token || "" } })
      .then((response) => {
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        return response.blob();
      })
      .then((blob) => URL.createObjectURL(blob))
      .catch((error) => { state.blobs.delete(url); throw error; }));
  }
  return state.blobs.get(url);
}

async function download(attachment) {
  const link = document.createElement("a");
  link.href = await objectUrl(attachment.url);
  link.download = attachment.file_name || "file";
  document.body.append(link);
  link.click();
  link.remove();
}

/** One file of a message: a picture as a preview, anything else as a download link. */
function attachmentView(attachment) {
  const name = attachment.file_name || "file";
  const box = document.createElement("div");
  box.className = "attachment";
  box.dataset.type = attachment.file_type || "file";
  if (!attachment.url) {  // a file still being sent
    box.textContent = `📎 ${name}`;
    return box;
  }
  if (attachment.file_type === "image") {
    const img = document.createElement("img");
    img.alt = t("image", { name });
    img.className = "attachment-image";
    objectUrl(attachment.url).then((src) => { img.src = src; }).catch(() => { img.hidden = true; });
    box.append(img);
  }
  const link = document.createElement("a");
  link.href = "#";
  link.className = "attachment-link";
  link.setAttribute("aria-label", t("download", { name }));
  const label = document.createElement("bdi");
  label.textContent = name;
  link.append("📎 ", label, ` ${formatSize(attachment.file_size)}`);
  link.addEventListener("click", (event) => { event.preventDefault(); download(attachment).catch(() => {}); });
  box.append(link);
  return box;
}

function addFiles(files) {
  const max = Number(state.config.max_upload_bytes) || DEFAULT_MAX_UPLOAD;
  let total = state.chosen.reduce((sum, file) => sum + file.size, 0);
  for (const file of files) {
    if (total + file.size > max) {
      els.notice.textContent = t("tooLarge", { name: file.name, size: formatSize(max) });
      continue;
    }
    total += file.size;
    state.chosen.push(file);
  }
  renderChosen();
}

function renderChosen() {
  els.chosen.replaceChildren(...state.chosen.map((file, index) => {
    const li = document.createElement("li");
    const name = document.createElement("bdi");
    name.textContent = file.name;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.setAttribute("aria-label", t("remove", { name: file.name }));
    remove.addEventListener("click", () => { state.chosen.splice(index, 1); renderChosen(); });
    li.append(name, ` ${formatSize(file.size)} `, remove);
    return li;
  }));
  els.chosen.hidden = state.chosen.length === 0;
}

// -- sending -------------------------------------------------------------------------------------
async function ensureVisitor(profile = {}) {
  if (state.visitor) return state.visitor;
  const visitor = await call("POST", "/widget/api/visitors", { website_token: websiteToken, page_url: pageUrl, locale, ...profile });
  saveVisitor({ token: visitor.token, source_id: visitor.source_id, email: visitor.contact.email || null });
  connect();
  return state.visitor;
}

async function post(message) {
  message._local = "pending";
  render();
  try {
    await ensureVisitor();
    let body = { content: message.content, echo_id: message.echo_id };
    if (message._files?.length) {
      body = new FormData();
      body.append("content", message.content);
      body.append("echo_id", message.echo_id);
      for (const file of message._files) body.append("attachments[]", file, file.name);
    }
    const saved = await call("POST", "/widget/api/messages", body, { "Idempotency-Key": message.echo_id });
    addMessage({ ...saved, _local: "sent", _files: undefined });
    els.notice.textContent = "";
    scheduleCollect();
  } catch (error) {
    if (error.status === 401) forgetVisitor();
    const pending = state.messages.get(`e${message.echo_id}`);
    if (pending) pending._local = "failed";
    els.notice.textContent = error.status === 429 || error.status === 413 ? error.message : "";
    render();
  }
}

function send() {
  const content = els.text.value;
  const files = state.chosen;
  if (!content.trim() && !files.length) return;
  els.text.value = "";
  state.chosen = [];
  renderChosen();
  stopTyping();
  const echo = uuid();
  const message = { echo_id: echo, content, message_type: "incoming", created_at: Math.floor(Date.now() / 1000), _local: "pending",
    _files: files, attachments: files.map((file) => ({ file_name: file.name, file_size: file.size })) };
  state.messages.set(`e${echo}`, message);
  post(message);
}

function typing() {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  const now = Date.now();
  if (now - state.typingSent > 3000) {
    state.typingSent = now;
    state.ws.send(JSON.stringify({ action: "typing", on: true }));
  }
  clearTimeout(state.typingIdle);
  state.typingIdle = setTimeout(stopTyping, 4000);
}

function stopTyping() {
  clearTimeout(state.typingIdle);
  if (state.typingSent && state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ action: "typing", on: false }));
  }
  state.typingSent = 0;
}

// -- live ------------------------------------------------------------------------------------------
async function catchUp() {
  if (!state.visitor) return;
  try {
    const answer = await call("GET", `/widget/api/messages${state.lastId ? `?after=${state.lastId}` : ""}`);
    for (const message of answer.messages) addMessage(message, { live: state.caughtUp });
    state.caughtUp = true;
  } catch (error) {
    if (error.status === 401) { forgetVisitor(); state.ws?.close(); }
  }
}

/** Read one message (and any after it) over REST, where its files come with their URLs. */
function connect() {
  if (!state.visitor || state.ws) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/widget/api/stream?token=${encodeURIComponent(state.visitor.token)}`);
  state.ws = ws;
  ws.onmessage = (event) => {
    let frame;
    try { frame = JSON.parse(event.data); } catch { return; }
    if (frame.event === "ready") {
      state.attempt = 0;
      els.notice.textContent = "";
      catchUp();
    } else if (frame.event === "message.created" || frame.event === "message.updated") {
      addMessage(frame.data, { live: true });
    } else if (frame.event === "typing") {
      clearTimeout(state.typingTimer);
      els.typing.textContent = frame.data.on ? t("typing", { name: t("agent") }) : "";
      if (frame.data.on) state.typingTimer = setTimeout(() => { els.typing.textContent = ""; }, 6000);
    } else if (frame.event === "conversation.status") {
      els.notice.textContent = frame.data.status === "resolved" ? t("resolved") : "";
    }
  };
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (event.code === 4401) { forgetVisitor(); return; }
    if (!state.visitor) return;
    els.notice.textContent = t("offline");
    const delay = Math.min(15000, 500 * 2 ** state.attempt) * (0.5 + Math.random() / 2);
    state.attempt += 1;
    setTimeout(connect, delay);
  };
}

// -- wiring -----------------------------------------------------------------------------------------
els.form.addEventListener("submit", (event) => { event.preventDefault(); send(); });
for (const [form, input, errorEl, save, required] of [
  [els.prechat, els.prechatEmail, els.prechatError, startFromPrechat, () => els.prechatEmail.required],
  [els.collect, els.collectEmail, els.collectError, saveCollectedEmail, () => true],
]) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitEmailForm({ input, errorEl, required: required(), save });
  });
}
els.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    send();
  } else if (event.key === "Escape") {
    toParent({ type: "postroom:close" });
  }
});
els.text.addEventListener("input", typing);
els.attach.addEventListener("click", () => els.files.click());
els.files.addEventListener("change", () => { addFiles([...els.files.files]); els.files.value = ""; });
els.text.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData?.files || [])];
  if (files.length) { event.preventDefault(); addFiles(files); }
});
els.close.addEventListener("click", () => toParent({ type: "postroom:close" }));
window.addEventListener("message", (event) => {
  if (event.source !== window.parent) return;
  const type = event.data && event.data.type;
  if (type === "postroom:open") {
    state.open = true;
    state.unread = 0;
    toParent({ type: "postroom:unread", count: 0 });
    (els.prechat.hidden ? els.text : els.prechatName).focus();
    render();
  } else if (type === "postroom:close") {
    state.open = false;
  }
});
if (window.parent === window) state.open = true;  // opened on its own (not embedded)

applyLanguage();
(async () => {
  try {
    applyConfig(await call("GET", `/widget/api/config?website_token=${encodeURIComponent(websiteToken)}`));
  } catch {
    els.notice.textContent = t("error");
  }
  if (state.visitor) {
    try {
      const restored = await call("GET", "/widget/api/visitor");
      saveVisitor({ ...state.visitor, email: restored.contact.email || null });
    } catch (error) {
      if (error.status === 401) forgetVisitor();
    }
  }
  if (state.visitor) {
    await catchUp();
    connect();
  }
})();
window.postroomWidget = { state };
