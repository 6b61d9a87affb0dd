// A grid of item cards over a paged source: infinite scroll (IntersectionObserver on a sentinel, and
// a "Load more" button for keyboards and old browsers), placeholders for items still in the
// pipeline that fill in by themselves (polling), arrow-key navigation between cards.

import { h } from "./dom.js";

const POLL_MS = 2000;
const POLL_BATCH = 8;
const SETTLED = new Set(["ready", "failed"]);

export function altText(item) {
  const text = item.description || item.title || item.filename || "Image";
  return text.length > 250 ? `${text.slice(0, 247)}…` : text;
}

function card(item) {
  const label = item.title || item.filename;
  const settled = SETTLED.has(item.status);
  const picture = item.thumbnail_url
    ? h("img", { src: item.thumbnail_url, alt: altText(item), loading: "lazy", decoding: "async" })
    : h("div", { class: "placeholder", "aria-hidden": "true" },
      h("span", { text: item.status === "failed" ? "Failed" : "Processing…" }));
  return h("li", { class: "cell", dataset: { id: item.id } },
    h("a", {
      class: "card",
      href: `#/items/${item.id}`,
      dataset: { status: item.status },
      "aria-label": settled ? null : `${label} (${item.status === "failed" ? "failed" : "processing"})`,
    },
    picture,
    h("span", { class: "card-title", text: label }),
    settled && item.status !== "failed" ? null : h("span", { class: "badge", text: item.status })));
}

export class Grid {
  constructor({ api, fetchPage, empty, label }) {
    this.api = api;
    this.fetchPage = fetchPage; // (cursor) → {items, next_cursor}
    this.emptyText = empty;
    this.cursor = undefined;
    this.loading = false;
    this.done = false;
    this.cells = new Map();
    this.list = h("ul", { class: "grid", "aria-label": label, onkeydown: (e) => this.keys(e) });
    this.more = h("button", { type: "button", class: "more", hidden: true, onclick: () => this.load(), text: "Load more" });
    this.note = h("p", { class: "note", role: "status" });
    this.sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
    this.element = h("section", { class: "grid-wrap" }, this.list, this.note, this.more, this.sentinel);
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.load();
    }, { rootMargin: "600px" });
    this.observer.observe(this.sentinel);
    this.poller = setInterval(() => this.poll(), POLL_MS);
  }

  destroy() {
    this.observer.disconnect();
    clearInterval(this.poller);
  }

  async load() {
    if (this.loading || this.done) return;
    this.loading = true;
    this.note.textContent = "Loading…";
    try {
      const page = await this.fetchPage(this.cursor);
      for (const item of page.items) this.upsert(item);
      this.cursor = page.next_cursor;
      this.done = !page.next_cursor;
      this.note.textContent = this.cells.size ? "" : this.emptyText;
    } catch (error) {
      this.note.textContent = error.message; // "Load more" stays, to try again
      this.more.hidden = false;
      this.loading = false;
      return;
    }
    this.loading = false;
    this.more.hidden = this.done;
  }

  upsert(item, { prepend = false } = {}) {
    const existing = this.cells.get(item.id);
    if (existing && existing.dataset.status === item.status && existing.dataset.thumb === String(Boolean(item.thumbnail_url))) return;
    const fresh = card(item);
    fresh.dataset.status = item.status;
    fresh.dataset.thumb = String(Boolean(item.thumbnail_url));
    if (existing) {
      const hadFocus = existing.contains(document.activeElement);
      existing.replaceWith(fresh);
      if (hadFocus) fresh.querySelector("a").focus();
    } else if (prepend) {
      this.list.prepend(fresh);
    } else {
      this.list.append(fresh);
    }
    this.cells.set(item.id, fresh);
    if (prepend) this.note.textContent = "";
  }

  remove(id) {
    this.cells.get(id)?.remove();
    this.cells.delete(id);
    if (!this.cells.size) this.note.textContent = this.emptyText;
  }

  async poll() {
    const waiting = [...this.cells.values()].filter((c) => !SETTLED.has(c.dataset.status)).slice(0, POLL_BATCH);
    for (const cell of waiting) {
      try {
        this.upsert(await this.api.get(`/items/${cell.dataset.id}`));
      } catch (error) {
        if (error.status === 404) this.remove(cell.dataset.id);
      }
    }
  }

  // Arrow keys move between cards; up/down by one row of the grid.
  keys(event) {
    const links = [...this.list.querySelectorAll("a.card")];
    const index = links.indexOf(document.activeElement);
    if (index < 0) return;
    const columns = Math.max(1, Math.round(this.list.clientWidth / links[0].parentElement.offsetWidth));
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns, Home: -index, End: links.length }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    links[Math.min(links.length - 1, Math.max(0, index + step))].focus();
  }
}
