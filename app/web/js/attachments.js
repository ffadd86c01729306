// Attachments: previews in the conversation, and the composer's file picker.
// Stored files need the agent's token, so they are fetched and shown from blob: URLs.

import { h, replaceChildren } from "./dom.js";
import { t } from "./i18n.js";

const blobs = new Map();  // data_url -> Promise<object URL>

export function formatSize(bytes) {
  if (bytes == null) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10240 ? 1 : 0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function ownUrl(url) {
  try { return new URL(url, location.href).origin === location.origin; } catch { return false; }
}

function objectUrl(api, url) {
  if (!blobs.has(url)) {
    blobs.set(url, api.blob(url).then((blob) => URL.createObjectURL(blob)).catch((error) => { blobs.delete(url); throw error; }));
  }
  return blobs.get(url);
}

async function download(api, attachment) {
  const href = ownUrl(attachment.data_url) ? await objectUrl(api, attachment.data_url) : attachment.data_url;
  const link = h("a", { href, download: attachment.file_name || "attachment", rel: "noopener" });
  document.body.append(link);
  link.click();
  link.remove();
}

/** One attachment of a message: an image preview, or a download button with name and size. */
export function attachmentView(attachment, api) {
  const name = attachment.file_name || attachment.file_type || "file";
  const button = h("button", { type: "button", class: "attachment-file", onclick: () => download(api, attachment),
    "aria-label": t("attachment.download", { name }) },
  h("bdi", {}, name), " ",
  h("span", { class: "size" }, formatSize(attachment.file_size)));
  if (attachment.file_type !== "image" || !attachment.data_url) {
    return h("div", { class: "attachment", dataset: { type: attachment.file_type || "file" } }, button);
  }
  const img = h("img", { class: "attachment-image", alt: t("attachment.image", { name }), loading: "lazy", decoding: "async" });
  if (ownUrl(attachment.data_url)) {
    objectUrl(api, attachment.data_url).then((src) => { img.src = src; }).catch(() => { img.hidden = true; });
  } else {
    img.src = attachment.data_url;
    img.referrerPolicy = "no-referrer";
  }
  return h("figure", { class: "attachment", dataset: { type: "image" } }, img, h("figcaption", {}, button));
}

/**
 * The composer's file picker: {el, files(), clear()}. Files over `maxBytes` are refused
 * here already (the server answers 413 for them anyway).
 */
export function filePicker({ maxBytes, onError }) {
  let chosen = [];
  const list = h("ul", { class: "chosen-files", "aria-live": "polite" });
  const input = h("input", { type: "file", id: "composer-files", multiple: true, class: "sr-only",
    onchange: () => { add([...input.files]); input.value = ""; } });
  const label = h("label", { for: "composer-files", class: "attach-button" }, t("composer.attach"));

  function add(files) {
    for (const file of files) {
      if (maxBytes && file.size > maxBytes) onError?.(t("composer.tooLarge", { name: file.name, size: formatSize(maxBytes) }));
      else chosen.push(file);
    }
    render();
  }

  function render() {
    replaceChildren(list, chosen.map((file, index) => h("li", {},
      h("bdi", {}, file.name), " ", h("span", { class: "size" }, formatSize(file.size)),
      h("button", { type: "button", class: "link", "aria-label": t("composer.remove", { name: file.name }),
        onclick: () => { chosen.splice(index, 1); render(); } }, "×"))));
  }

  return {
    el: h("div", { class: "file-picker" }, input, label, list),
    input,
    files: () => chosen.slice(),
    clear: () => { chosen = []; render(); },
    add,
  };
}
