// Uploads: each file is checked here first (type, size), then POST /uploads creates the item and a
// presigned POST, and the file goes straight to the bucket with XMLHttpRequest (upload progress).
// After that the item is polled until the pipeline says ready or failed.
//   queued → uploading (bar) → processing → ready | failed (reason, Retry) | refused (reason, nothing sent)

import { ApiError } from "./api.js";
import { formatBytes, h } from "./dom.js";

const POLL_MS = 1500;
const TERMINAL = new Set(["ready", "failed"]);

// Why a file cannot be uploaded, before anything is sent; null when it can.
export function refusal(file, config) {
  if (!config.uploadTypes.includes(file.type)) {
    const kind = file.type || "an unknown type";
    return `${kind} is not accepted; upload JPEG, PNG, WebP or GIF images.`;
  }
  if (file.size > config.maxUploadBytes) {
    return `${formatBytes(file.size)} is over the ${formatBytes(config.maxUploadBytes)} limit.`;
  }
  if (file.size === 0) return "The file is empty.";
  return null;
}

function postToBucket(upload, file, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [key, value] of Object.entries(upload.fields)) form.append(key, value);
    form.append("file", file); // S3 requires the file to be the last field
    const xhr = new XMLHttpRequest();
    xhr.open("POST", upload.url);
    xhr.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      const code = /<Code>([^<]+)<\/Code>/.exec(xhr.responseText || "")?.[1];
      const reasons = {
        EntityTooLarge: "The file is over the size limit.",
        AccessDenied: "The upload link was refused (it may have expired).",
      };
      reject(new Error(reasons[code] || `The storage refused the file (${code || xhr.status}).`));
    };
    xhr.onerror = () => reject(new Error("The upload was interrupted. Check your connection."));
    xhr.send(form);
  });
}

export class UploadQueue {
  constructor({ api, config, panel, onItem }) {
    this.api = api;
    this.config = config;
    this.panel = panel;
    this.onItem = onItem; // the grid shows new and changed items
    this.list = h("ul", { class: "upload-list" });
    this.heading = h("h2", { id: "uploads-heading", text: "Uploads" });
    panel.append(
      h("div", { class: "uploads-head" }, this.heading,
        h("span", {},
          h("button", { type: "button", class: "link", onclick: () => this.clearFinished(), text: "Clear finished" }),
          h("button", { type: "button", class: "link", onclick: () => (panel.hidden = true), text: "Hide" }))),
      this.list,
    );
    panel.setAttribute("aria-labelledby", "uploads-heading");
    panel.setAttribute("role", "region");
  }

  add(files) {
    this.panel.hidden = false;
    for (const file of files) this.start(new Upload(file, this));
  }

  clearFinished() {
    for (const row of [...this.list.children]) if (row.dataset.done === "1") row.remove();
    if (!this.list.children.length) this.panel.hidden = true;
  }

  async start(upload) {
    const reason = refusal(upload.file, this.config);
    if (reason) return upload.set("refused", reason);
    upload.progress(0);
    upload.set("uploading");
    let created;
    try {
      created = await this.api.request("POST", "/uploads", {
        body: { filename: upload.file.name, content_type: upload.file.type, size: upload.file.size },
      });
    } catch (error) {
      const refusedByApi = error instanceof ApiError && [413, 415, 422].includes(error.status);
      return upload.set(refusedByApi ? "refused" : "failed", error.message, { retry: () => this.start(upload) });
    }
    upload.item = created.item;
    this.onItem(created.item);
    try {
      await postToBucket(created.upload, upload.file, (fraction) => upload.progress(fraction));
    } catch (error) {
      return upload.set("failed", error.message, { retry: () => this.start(upload) });
    }
    upload.progress(1);
    upload.set("processing");
    this.follow(upload);
  }

  async follow(upload) {
    while (true) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      let item;
      try {
        item = await this.api.get(`/items/${upload.item.id}`);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) return upload.set("failed", "The item is gone.");
        continue; // transient (network, 429, 503): ask again
      }
      upload.item = item;
      this.onItem(item);
      if (!TERMINAL.has(item.status)) continue;
      if (item.status === "ready") return upload.set("ready");
      return upload.set("failed", item.failure_reason || "Processing failed.", { retry: () => this.retry(upload) });
    }
  }

  async retry(upload) {
    upload.set("processing");
    try {
      await this.api.request("POST", `/items/${upload.item.id}/retry`);
    } catch (error) {
      return upload.set("failed", error.message, { retry: () => this.retry(upload) });
    }
    this.follow(upload);
  }
}

const LABELS = {
  queued: "Queued",
  uploading: "Uploading",
  processing: "Processing",
  ready: "Ready",
  failed: "Failed",
  refused: "Not uploaded",
};

class Upload {
  constructor(file, queue) {
    this.file = file;
    this.item = null;
    this.bar = h("progress", { max: "100", value: "0", "aria-label": `Upload progress of ${file.name}` });
    this.status = h("span", { class: "upload-status" });
    this.reason = h("span", { class: "upload-reason" });
    this.actions = h("span", { class: "upload-actions" });
    this.row = h("li", { class: "upload", dataset: { state: "queued" } },
      h("span", { class: "upload-name", title: file.name, text: file.name }),
      this.bar, this.status, this.reason, this.actions);
    queue.list.prepend(this.row);
    this.set("queued");
  }

  progress(fraction) {
    this.bar.value = Math.round(fraction * 100);
  }

  set(state, reason = "", { retry } = {}) {
    this.row.dataset.state = state;
    this.row.dataset.done = state === "ready" || state === "refused" ? "1" : "0";
    this.status.textContent = LABELS[state];
    this.reason.textContent = reason;
    this.bar.hidden = state === "refused" || state === "failed";
    if (state === "processing") this.bar.removeAttribute("value"); // indeterminate: the pipeline is at work
    if (state === "ready") this.bar.value = 100;
    const buttons = [];
    if (retry) {
      buttons.push(h("button", {
        type: "button",
        "aria-label": `Retry ${this.file.name}`,
        onclick: () => retry(),
        text: "Retry",
      }));
    }
    if (state === "ready" && this.item) buttons.push(h("a", { href: `#/items/${this.item.id}`, text: "Open" }));
    this.actions.replaceChildren(...buttons);
  }
}
