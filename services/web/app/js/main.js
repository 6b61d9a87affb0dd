// The app: reads config.json, signs in, and routes on the URL hash so every screen (with its search
// and filters) survives a reload and a sign-in redirect.
//   #/?category=&tag=&from=&to=        browse, newest first
//   #/search?q=…&category=…            search by meaning
//   #/similar/<id>                     more like this
//   #/items/<id>                       one item: look, edit, delete

import { Api, ApiError } from "./api.js";
import { Auth, SignInRequired } from "./auth.js";
import { announce, clear, formatBytes, formatDate, h } from "./dom.js";
import { altText, Grid } from "./grid.js";
import { UploadQueue } from "./upload.js";

const PAGE = 24;
const main = document.getElementById("main");
let config, auth, api, uploads;
let grid = null; // the grid on screen, if any

function route() {
  const [path, query = ""] = (location.hash.slice(1) || "/").split("?");
  return { path, params: new URLSearchParams(query) };
}

function go(path, params) {
  const query = params && [...params].length ? `?${params}` : "";
  location.hash = `#${path}${query}`;
}

// --- filters shared by browse and search ----------------------------------------------------------
function filterQuery(params) {
  const dayStart = (value) => (value ? new Date(`${value}T00:00:00`).toISOString() : undefined);
  const nextDay = (value) => {
    if (!value) return undefined;
    const day = new Date(`${value}T00:00:00`);
    day.setDate(day.getDate() + 1);
    return day.toISOString();
  };
  return {
    category: params.get("category") || undefined,
    tag: params.getAll("tag"),
    created_after: dayStart(params.get("from")),
    created_before: nextDay(params.get("to")),
  };
}

function filtersForm(path, params) {
  const field = (label, input) => h("label", { class: "field" }, h("span", { text: label }), input);
  const category = h("select", { name: "category" },
    h("option", { value: "", text: "Any category" }),
    config.categories.map((c) => h("option", { value: c, text: c, selected: params.get("category") === c })));
  const tag = h("input", { name: "tag", type: "text", value: params.getAll("tag").join(", "), placeholder: "e.g. red", maxlength: "200" });
  const from = h("input", { name: "from", type: "date", value: params.get("from") || "" });
  const to = h("input", { name: "to", type: "date", value: params.get("to") || "" });
  const form = h("form", { class: "filters", "aria-label": "Filters" },
    field("Category", category), field("Tag", tag), field("From", from), field("To", to),
    h("button", { type: "submit", text: "Apply" }),
    h("a", { href: `#${path}${params.get("q") ? `?q=${encodeURIComponent(params.get("q"))}` : ""}`, class: "link", text: "Clear" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (params.get("q")) next.set("q", params.get("q"));
    if (category.value) next.set("category", category.value);
    for (const t of tag.value.split(",").map((s) => s.trim()).filter(Boolean)) next.append("tag", t);
    if (from.value) next.set("from", from.value);
    if (to.value) next.set("to", to.value);
    go(path, next);
  });
  return form;
}

function showGrid(title, options, filters) {
  grid = new Grid({ api, ...options });
  clear(main, h("div", { class: "screen-head" }, h("h1", { text: title })), filters, grid.element);
  grid.load();
}

// --- screens -----------------------------------------------------------------------------------
function browse({ params }) {
  const query = filterQuery(params);
  const filtered = query.category || query.tag.length || query.created_after || query.created_before;
  showGrid("Your collection", {
    label: "Your images, newest first",
    empty: filtered ? "Nothing matches these filters." : "No images yet. Drop some here or choose Upload.",
    fetchPage: (cursor) => api.get("/items", { ...query, limit: PAGE, cursor }),
  }, filtersForm("/", params));
  grid.acceptsNew = !filtered;
}

function search({ params }) {
  const q = params.get("q") || "";
  document.getElementById("search-input").value = q;
  if (!q.trim()) return go("/");
  showGrid(`Results for “${q}”`, {
    label: `Search results for ${q}`,
    empty: "Nothing found. Images are searchable once they are ready.",
    fetchPage: async () => {
      const result = await api.get("/search", { q, k: 48, ...filterQuery(params) });
      return { items: result.items, next_cursor: null };
    },
  }, filtersForm("/search", params));
}

async function similar(id) {
  let source;
  try {
    source = await api.get(`/items/${id}`);
  } catch (error) {
    return failure(error);
  }
  showGrid(`More like “${source.title || source.filename}”`, {
    label: "Similar images",
    empty: "No similar images yet.",
    fetchPage: async () => {
      const result = await api.get(`/items/${id}/similar`, { k: 48 });
      return { items: result.items, next_cursor: null };
    },
  }, h("p", {}, h("a", { href: `#/items/${id}`, text: "Back to the image" })));
}

function failure(error) {
  if (error instanceof SignInRequired) return;
  const notFound = error instanceof ApiError && error.status === 404;
  clear(main, h("div", { class: "screen-head" }, h("h1", { text: notFound ? "Not found" : "Something went wrong" })),
    h("p", { text: notFound ? "This image does not exist, or is not yours." : error.message }),
    h("p", {}, h("a", { href: "#/", text: "Back to your collection" })));
}

async function itemScreen(id) {
  let item;
  try {
    item = await api.get(`/items/${id}`);
  } catch (error) {
    return failure(error);
  }
  renderItem(item);
}

function renderItem(item) {
  const large = item.large_thumbnail_url || item.thumbnail_url;
  const picture = large
    ? h("img", { src: large, alt: altText(item), class: "large" })
    : h("div", { class: "placeholder large", text: item.status === "failed" ? "No preview" : "Processing…" });
  const section = (title, ...content) => h("section", { class: "facet" }, h("h2", { text: title }), ...content);
  const tags = item.tags.length
    ? h("ul", { class: "tags", "aria-label": "Tags" },
      item.tags.map((t) => h("li", {}, h("a", { href: `#/?tag=${encodeURIComponent(t)}`, text: t }))))
    : h("p", { class: "muted", text: "No tags" });
  const colours = h("ul", { class: "colours", "aria-label": "Colours" }, item.colors.map((c) => {
    const swatch = h("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.backgroundColor = c; // CSSOM, not an inline style attribute: allowed by the CSP
    return h("li", {}, swatch, h("span", { text: c }));
  }));
  const actions = h("div", { class: "actions" });
  if (item.status === "ready") actions.append(h("a", { class: "button", href: `#/similar/${item.id}`, text: "More like this" }));
  actions.append(h("button", { type: "button", onclick: () => openOriginal(item.id), text: "Open original" }));
  actions.append(h("button", { type: "button", onclick: () => editItem(item), text: "Edit" }));
  if (item.status === "failed") actions.append(h("button", { type: "button", onclick: () => retryItem(item), text: "Retry" }));
  actions.append(h("button", { type: "button", class: "danger", onclick: () => deleteItem(item), text: "Delete" }));

  clear(main,
    h("p", { class: "back" }, h("a", { href: "#/", text: "← Your collection" })),
    h("article", { class: "item" },
      h("figure", { class: "item-picture" }, picture),
      h("div", { class: "item-info", id: "item-info" },
        h("h1", { text: item.title || item.filename, tabindex: "-1" }),
        item.status === "ready" ? null : h("p", { class: `state state-${item.status}`, text: `Status: ${item.status}` }),
        item.failure_reason ? h("p", { class: "reason", text: item.failure_reason }) : null,
        actions,
        section("Description", h("p", { class: "prose", text: item.description || "No description yet." })),
        section("Tags", tags),
        item.colors.length ? section("Colours", colours) : null,
        item.visible_text ? section("Visible text", h("p", { class: "prose", text: item.visible_text })) : null,
        section("Details", h("dl", { class: "details" },
          h("dt", { text: "File" }), h("dd", { text: item.filename }),
          item.category ? [h("dt", { text: "Category" }), h("dd", { text: item.category })] : null,
          item.width ? [h("dt", { text: "Size" }), h("dd", { text: `${item.width} × ${item.height} px${item.bytes ? `, ${formatBytes(item.bytes)}` : ""}` })] : null,
          h("dt", { text: "Added" }), h("dd", { text: formatDate(item.created_at) }))))));
  main.querySelector("h1").focus({ preventScroll: true }); // keyboard and screen reader users land on the item
  if (!["ready", "failed"].includes(item.status)) {
    setTimeout(async () => {
      if (route().path === `/items/${item.id}` && !document.getElementById("edit-form")) itemScreen(item.id);
    }, 2000);
  }
}

async function openOriginal(id) {
  try {
    const fresh = await api.get(`/items/${id}`); // presigned URLs expire: ask for a new one
    window.open(fresh.original_url, "_blank", "noopener");
  } catch (error) {
    announce(error.message);
  }
}

function editItem(item) {
  const info = document.getElementById("item-info");
  const title = h("input", { id: "edit-title", name: "title", type: "text", value: item.title || "", maxlength: "300" });
  const description = h("textarea", { id: "edit-description", name: "description", rows: "6", maxlength: "10000" });
  description.value = item.description || "";
  const tags = h("input", { id: "edit-tags", name: "tags", type: "text", value: item.tags.join(", ") });
  const error = h("p", { class: "reason", role: "alert" });
  const form = h("form", { id: "edit-form", class: "edit" },
    h("h2", { text: "Edit" }),
    h("label", { for: "edit-title", text: "Title" }), title,
    h("label", { for: "edit-description", text: "Description" }), description,
    h("label", { for: "edit-tags", text: "Tags (comma-separated)" }), tags,
    error,
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary", text: "Save" }),
      h("button", { type: "button", onclick: () => renderItem(item), text: "Cancel" })));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const tagList = [...new Set(tags.value.split(",").map((t) => t.trim()).filter(Boolean))];
    const tooLong = tagList.find((t) => t.length > 64);
    if (tooLong) return (error.textContent = `The tag “${tooLong.slice(0, 20)}…” is longer than 64 characters.`);
    if (tagList.length > 50) return (error.textContent = "At most 50 tags.");
    try {
      const saved = await api.request("PATCH", `/items/${item.id}`, {
        body: { title: title.value.trim() || null, description: description.value || null, tags: tagList },
      });
      announce("Saved.");
      renderItem({ ...item, ...saved });
    } catch (e) {
      error.textContent = e.message;
    }
  });
  clear(info, form);
  title.focus();
}

async function retryItem(item) {
  try {
    await api.request("POST", `/items/${item.id}/retry`);
    announce("Retrying…");
    itemScreen(item.id);
  } catch (error) {
    announce(error.message);
  }
}

async function deleteItem(item) {
  if (!window.confirm(`Delete “${item.title || item.filename}”? This cannot be undone.`)) return;
  try {
    await api.request("DELETE", `/items/${item.id}`);
  } catch (error) {
    return announce(error.message);
  }
  announce(`Deleted “${item.title || item.filename}”.`);
  go("/");
}

function signInScreen(message = "") {
  grid?.destroy();
  grid = null;
  const shown = document.getElementById("signin-form");
  if (shown) {
    // Several requests can fail at once: keep what the person is typing.
    if (message) shown.querySelector(".reason").textContent = message;
    return;
  }
  document.getElementById("upload-button").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("user-name").textContent = "";
  if (!auth.canSignInHere) {
    clear(main, h("div", { class: "signin" }, h("h1", { text: "Sign in to Collections" }),
      message ? h("p", { class: "reason", text: message }) : null,
      h("button", { type: "button", class: "primary", onclick: () => auth.signIn(location.hash), text: "Sign in" })));
    return;
  }
  const email = h("input", { id: "signin-email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "signin-password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "reason", role: "alert", text: message });
  const form = h("form", { class: "signin", id: "signin-form" },
    h("h1", { text: "Sign in to Collections" }),
    h("label", { for: "signin-email", text: "E-mail" }), email,
    h("label", { for: "signin-password", text: "Password" }), password,
    error,
    h("button", { type: "submit", class: "primary", text: "Sign in" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await auth.signInWithPassword(email.value.trim(), password.value);
    } catch (e) {
      error.textContent = e.message;
      return;
    }
    const back = auth.takeReturnTo();
    if (back && back !== location.hash) location.hash = back;
    else render();
  });
  clear(main, form);
  email.focus();
}

// --- wiring ------------------------------------------------------------------------------------
function render() {
  grid?.destroy();
  grid = null;
  if (!auth.signedIn) return signInScreen();
  document.getElementById("upload-button").hidden = false;
  document.getElementById("sign-out").hidden = false;
  document.getElementById("user-name").textContent = auth.username;
  const { path, params } = route();
  let match;
  if (path === "/search") return search({ params });
  if ((match = /^\/items\/([\w-]+)$/.exec(path))) return itemScreen(match[1]);
  if ((match = /^\/similar\/([\w-]+)$/.exec(path))) return similar(match[1]);
  return browse({ params });
}

function wireUploads() {
  const input = document.getElementById("file-input");
  input.accept = config.uploadTypes.join(",");
  document.getElementById("upload-button").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    uploads.add([...input.files]);
    input.value = "";
  });
  const overlay = document.getElementById("drop-overlay");
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event) || !auth.signedIn) return;
    depth += 1;
    overlay.hidden = false;
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) overlay.hidden = true;
  });
  document.addEventListener("dragover", (event) => hasFiles(event) && event.preventDefault());
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    if (auth.signedIn) uploads.add([...event.dataTransfer.files]);
  });
}

function wireKeys() {
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName);
    if (event.key === "/" && !typing) {
      event.preventDefault();
      document.getElementById("search-input").focus();
    } else if (event.key === "Escape" && route().path.startsWith("/items/") && !document.getElementById("edit-form")) {
      history.length > 1 ? history.back() : go("/");
    }
  });
}

async function boot() {
  config = await (await fetch("config.json", { cache: "no-store" })).json();
  auth = new Auth(config.auth);
  api = new Api(config.apiUrl, auth, () => {
    auth.signIn(location.hash);
    if (auth.canSignInHere) signInScreen("Your session has ended; please sign in again.");
  });
  uploads = new UploadQueue({
    api,
    config,
    panel: document.getElementById("uploads"),
    onItem: (item) => grid?.acceptsNew && grid.upsert(item, { prepend: true }),
  });
  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = document.getElementById("search-input").value.trim();
    const next = new URLSearchParams(route().path === "/search" || route().path === "/" ? route().params : undefined);
    if (q) next.set("q", q);
    go("/search", next);
  });
  document.getElementById("sign-out").addEventListener("click", () => {
    auth.signOut();
    render();
  });
  wireUploads();
  wireKeys();
  window.addEventListener("hashchange", render);
  try {
    await auth.start();
  } catch (error) {
    auth.forget();
    return signInScreen(error.message);
  }
  if (auth.signedIn) {
    const back = auth.takeReturnTo();
    if (back && back !== location.hash) {
      location.hash = back; // hashchange renders
      return;
    }
  }
  render();
}

boot().catch((error) => {
  clear(main, h("p", { class: "reason", text: `The app could not start: ${error.message}` }));
});
