/* Postroom live-chat loader. Embed with:
 *   <script src="https://postroom.example/widget/sdk.js" data-website-token="…" async></script>
 * Optional: data-position="left", data-locale="th".
 * It adds a chat bubble (in a shadow root, so the page's CSS cannot touch it) and an
 * iframe with the chat on Postroom's own origin. The page can call
 * window.$postroom.open() / .close() / .toggle().
 */
(function () {
  "use strict";
  if (window.$postroom) return;
  var script = document.currentScript ||
    document.querySelector('script[data-website-token][src*="/widget/sdk.js"]');
  if (!script) return;
  var websiteToken = script.getAttribute("data-website-token");
  if (!websiteToken) {
    console.warn("Postroom widget: the script tag needs data-website-token");
    return;
  }
  var origin = new URL(script.src, location.href).origin;
  var side = script.getAttribute("data-position") === "left" ? "left" : "right";
  var locale = script.getAttribute("data-locale") || navigator.language || "en";
  var rtl = /^(fa|ar|he|ur)\b/i.test(locale);
  var labels = {
    open: { en: "Open chat", th: "เปิดแชท", vi: "Mở trò chuyện", fa: "باز کردن گفتگو", zh: "打开聊天" },
    close: { en: "Close chat", th: "ปิดแชท", vi: "Đóng trò chuyện", fa: "بستن گفتگو", zh: "关闭聊天" },
    title: { en: "Chat", th: "แชท", vi: "Trò chuyện", fa: "گفتگو", zh: "聊天" },
  };
  function label(key) {
    var lang = locale.toLowerCase().split("-")[0];
    return labels[key][lang] || labels[key].en;
  }

  var host = document.createElement("div");
  host.id = "postroom-widget";
  var shadow = host.attachShadow({ mode: "open" });
  var style = document.createElement("style");
  style.textContent = [
    ":host{all:initial}",
    ".bubble{position:fixed;bottom:20px;" + side + ":20px;width:60px;height:60px;border-radius:50%;border:0;",
    "background:#1f5fbf;color:#fff;cursor:pointer;box-shadow:0 6px 20px rgba(0,0,0,.25);z-index:2147483000;",
    "display:flex;align-items:center;justify-content:center;padding:0}",
    ".bubble:focus-visible{outline:3px solid #111;outline-offset:3px}",
    ".bubble svg{width:28px;height:28px;fill:currentColor}",
    ".badge{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;border-radius:11px;background:#c62828;",
    "color:#fff;font:700 12px/22px system-ui,sans-serif;text-align:center;padding:0 6px;box-sizing:border-box}",
    ".badge[hidden]{display:none}",
    ".panel{position:fixed;bottom:92px;" + side + ":20px;width:min(380px,calc(100vw - 40px));",
    "height:min(600px,calc(100vh - 120px));border:0;border-radius:14px;box-shadow:0 12px 40px rgba(0,0,0,.25);",
    "z-index:2147483000;background:#fff;overflow:hidden}",
    ".panel[hidden]{display:none}",
    ".panel iframe{width:100%;height:100%;border:0;display:block}",
  ].join("");
  var chatIcon = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg>';
  var closeIcon = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M18.3 5.7 12 12l6.3 6.3-1.4 1.4L10.6 13.4 4.3 19.7 2.9 18.3 9.2 12 2.9 5.7 4.3 4.3l6.3 6.3 6.3-6.3z"/></svg>';

  var bubble = document.createElement("button");
  bubble.type = "button";
  bubble.className = "bubble";
  bubble.setAttribute("aria-expanded", "false");
  bubble.setAttribute("aria-controls", "postroom-panel");
  bubble.setAttribute("aria-label", label("open"));
  bubble.innerHTML = chatIcon;
  var badge = document.createElement("span");
  badge.className = "badge";
  badge.hidden = true;
  bubble.appendChild(badge);

  var panel = document.createElement("div");
  panel.className = "panel";
  panel.id = "postroom-panel";
  panel.hidden = true;
  var frame = document.createElement("iframe");
  frame.title = label("title");
  frame.setAttribute("allow", "");
  frame.src = origin + "/widget/frame?" + new URLSearchParams({
    website_token: websiteToken, locale: locale, page: location.origin + location.pathname,
  }).toString();
  panel.appendChild(frame);
  if (rtl) panel.dir = "rtl";
  shadow.appendChild(style);
  shadow.appendChild(panel);
  shadow.appendChild(bubble);

  function luminance(hex) {
    function channel(i) {
      var c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    }
    return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
  }

  var isOpen = false;
  function post(message) {
    if (frame.contentWindow) frame.contentWindow.postMessage(message, origin);
  }
  function open() {
    isOpen = true;
    panel.hidden = false;
    bubble.setAttribute("aria-expanded", "true");
    bubble.setAttribute("aria-label", label("close"));
    bubble.innerHTML = closeIcon;
    bubble.appendChild(badge);
    badge.hidden = true;
    post({ type: "postroom:open" });
  }
  function close() {
    isOpen = false;
    panel.hidden = true;
    bubble.setAttribute("aria-expanded", "false");
    bubble.setAttribute("aria-label", label("open"));
    bubble.innerHTML = chatIcon;
    bubble.appendChild(badge);
    post({ type: "postroom:close" });
  }
  bubble.addEventListener("click", function () { if (isOpen) close(); else open(); });

  window.addEventListener("message", function (event) {
    if (event.origin !== origin || event.source !== frame.contentWindow) return;
    var data = event.data || {};
    if (data.type === "postroom:close") {
      close();
      bubble.focus();
    } else if (data.type === "postroom:unread") {
      var count = Number(data.count) || 0;
      badge.textContent = count > 9 ? "9+" : String(count);
      badge.hidden = isOpen || count === 0;
    } else if (data.type === "postroom:config" && /^#[0-9a-f]{6}$/i.test(data.color || "")) {
      bubble.style.background = data.color;
      bubble.style.color = luminance(data.color) > 0.21 ? "#1f2328" : "#ffffff";
    }
  });

  function mount() { document.body.appendChild(host); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
  window.$postroom = { open: open, close: close, toggle: function () { if (isOpen) close(); else open(); } };
})();
