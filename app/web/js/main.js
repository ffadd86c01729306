// Boot: the session (kept in localStorage, so it survives a reload), the sign-in form,
// and the inbox once signed in.

import { ApiError, createApi, signIn } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { LANGUAGES, initLanguage, language, setLanguage, t } from "./i18n.js";
import { mountInbox } from "./inbox.js";
import { attachReportsLink, mountReports } from "./reports.js";

const SESSION_KEY = "postroom.session";
const root = document.getElementById("root");
let current = null;

function loadSession() {
  try {
    const session = JSON.parse(localStorage.getItem(SESSION_KEY));
    return session && session.token && session.accountId ? session : null;
  } catch {
    return null;
  }
}

function saveSession(session) {
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

function clearSession() {
  localStorage.removeItem(SESSION_KEY);
}

async function logout() {
  const session = loadSession();
  current?.stop();
  current = null;
  clearSession();
  if (session) {
    try { await createApi(session).del("/auth/sign_out", { account: false }); } catch { /* already gone */ }
  }
  history.replaceState(null, "", "/");
  showLogin();
}

function expired() {
  current?.stop();
  current = null;
  clearSession();
  showLogin();
}

function showLogin(message = "") {
  document.title = "Postroom";
  const error = h("p", { class: "form-error", role: "alert", id: "login-error" }, message);
  const email = h("input", { id: "email", name: "email", type: "email", autocomplete: "username", required: true, dir: "ltr" });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true, dir: "ltr" });
  const submit = h("button", { type: "submit", class: "primary" }, t("login.submit"));
  const languageSelect = h("select", { id: "login-language", onchange: (e) => { setLanguage(e.target.value); showLogin(); } },
    Object.entries(LANGUAGES).map(([code, info]) => h("option", { value: code, selected: code === language() }, info.name)));
  const form = h("form", { class: "login-card", "aria-labelledby": "login-title", novalidate: true },
    h("h1", { id: "login-title" }, t("login.title")),
    h("div", { class: "field" }, h("label", { for: "email" }, t("login.email")), email),
    h("div", { class: "field" }, h("label", { for: "password" }, t("login.password")), password),
    error,
    submit,
    h("div", { class: "field inline" }, h("label", { for: "login-language" }, t("header.language")), languageSelect));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!email.value || !password.value) {
      error.textContent = t("login.failed");
      (email.value ? password : email).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = t("login.busy");
    error.textContent = "";
    try {
      const session = await signIn(email.value.trim(), password.value);
      saveSession(session);
      showInbox(session);
    } catch (err) {
      submit.disabled = false;
      submit.textContent = t("login.submit");
      error.textContent = err instanceof ApiError && (err.status === 401 || err.status === 422)
        ? t("login.failed") : t("login.error", { message: err.message });
      password.select();
    }
  });
  replaceChildren(root, h("main", { class: "login" }, form));
  root.removeAttribute("aria-busy");
  email.focus();
}

function showInbox(session) {
  document.title = `Postroom · ${session.accountName || ""}`;
  const api = createApi(session, { onUnauthorized: expired });
  current?.stop();
  if (location.hash === "#/reports") {  // the Reports section (reports.js)
    current = mountReports(root, session, api, { onBack: () => { history.replaceState(null, "", "/"); showInbox(session); } });
    return;
  }
  const inbox = mountInbox(root, session, api, { onLogout: logout });
  const detach = attachReportsLink(root, () => { history.replaceState(null, "", "#/reports"); showInbox(session); });
  current = { stop: () => { detach(); inbox.stop(); } };
}

initLanguage();
const saved = loadSession();
if (saved) showInbox(saved);
else showLogin();
