// The research desk's start: theme, sign-in when the server has a token, then each
// view mounted in its own section. Views: js/views/*.js, each `mount(root, app)`,
// returning a handle (or null when it has nothing to show on this server), or a promise
// of one (a view that must ask the server first, as Runs does).
import { ApiError } from "./api.js";
import { createApp } from "./app.js";
import { h } from "./dom.js";
import { askForToken, sessionState, signOut } from "./session.js";
import { initTheme } from "./theme.js";
import * as ask from "./views/ask.js";
import * as conversations from "./views/conversations.js";
import * as indexes from "./views/indexes.js";
import * as runs from "./views/runs.js";

const $ = (selector) => document.querySelector(selector);
const PAGES = { ask, indexes, runs };

const wantedView = () => (location.hash.match(/^#\/([a-z]+)/) || [])[1] || "ask";

function route() {
  const wanted = wantedView();
  const name = app.views[wanted] ? wanted : "ask";
  for (const section of document.querySelectorAll("main > section[data-view]")) {
    section.hidden = section.dataset.view !== name;
  }
  for (const link of document.querySelectorAll("nav.views a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  app.views[name]?.show?.();
}

async function signIn() {
  const state = await sessionState(app);
  $("#sign-out").hidden = !state.token_required;
  if (state.token_required && !state.signed_in) await askForToken($("#signin"), app);
}

function mounted(name, handle) {
  if (handle) app.views[name] = handle;
  const link = document.querySelector(`nav.views a[data-view="${name}"]`);
  if (link) link.hidden = !handle;
}

function mountViews() {
  for (const [name, view] of Object.entries(PAGES)) {
    const handle = view.mount($(`#view-${name}`), app);
    if (!(handle instanceof Promise)) mounted(name, handle);
    else {
      handle.then((late) => {
        mounted(name, late);
        if (late && wantedView() === name) route(); // #/runs/NAME on a reload
      }, () => mounted(name, null));
    }
  }
  const sidebar = $("#conversations");
  const side = conversations.mount(sidebar, app);
  sidebar.hidden = !side;
  if (side) app.views.conversations = side;
  window.addEventListener("hashchange", route);
  route();
}

function showServer() {
  const server = app.server || {};
  $("#server-info").textContent = server.model ? `model: ${server.model}` : "";
}

const app = createApp();

async function start() {
  initTheme($("#theme-toggle"));
  $("#sign-out").addEventListener("click", async () => {
    await signOut(app).catch(() => {});
    location.reload();
  });
  app.on("signed-out", async () => {
    await askForToken($("#signin"), app);
    await app.refreshIndexes().catch(() => {});
    app.emit("indexes-changed");
  });
  try {
    await signIn();
    await app.refreshIndexes();
  } catch (e) {
    const message = e instanceof ApiError ? e.message : String(e);
    $("#main").prepend(h("p", { class: "error", role: "alert" }, `The server did not answer: ${message}`));
  }
  showServer();
  mountViews();
}

start();
