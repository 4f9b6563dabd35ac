// Mart's order-tracking dashboard: plain JavaScript, no build step.
//
// It signs in with the public API (POST /auth/token) and then polls the same
// API every second, so statuses change on the page within two seconds of
// changing in the system. The API decides what the caller sees: a customer
// their own orders, an admin all of them. Data goes into the page as text
// (textContent), never as HTML.
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "mart.dashboard.token";
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem(TOKEN_KEY);
let selectedOrder = null;
let knownStatuses = new Map();
let timer = null;
// One polling loop at a time: a refresh started while another is in flight
// (sign-in, tab shown again) replaces it, and the old one stops.
let generation = 0;

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { accept: "application/json", ...(options.headers || {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, (body && body.detail) || response.statusText);
  }
  return body;
}

// --- signing in and out ---------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const answer = await api("/auth/token", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: $("email").value, password: $("password").value }),
    });
    token = answer.access_token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("password").value = "";
    await showBoard();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

function signOut(message = "") {
  generation++;
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(timer);
  knownStatuses = new Map();
  selectedOrder = null;
  $("board").hidden = true;
  $("who").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("email").focus();
}

async function showBoard() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("logout").hidden = false;
  try {
    const me = await api("/users/me");
    $("who").textContent = `Signed in as ${me.email}${me.role === "admin" ? " (admin: all orders)" : ""}`;
    $("who").hidden = false;
  } catch (error) {
    if (error.status === 401) return signOut("Your session has ended; sign in again.");
  }
  await refresh();
}

// --- polling --------------------------------------------------------------

async function refresh() {
  clearTimeout(timer);
  const mine = ++generation;
  try {
    const [summary, orders, activity, detail] = await Promise.all([
      api("/orders/summary"),
      api("/orders?limit=50"),
      api("/orders/activity?limit=15"),
      selectedOrder ? api(`/orders/${selectedOrder}`) : null,
    ]);
    if (mine !== generation) return; // a newer refresh took over
    renderCounts(summary);
    renderOrders(orders.items);
    renderEvents(activity.items);
    if (detail) renderDetail(detail);
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    $("error").textContent = "";
  } catch (error) {
    if (mine !== generation) return;
    if (error.status === 401) return signOut("Your session has ended; sign in again.");
    $("error").textContent = `Could not refresh: ${error.message}`;
  }
  // Polling pauses while the tab is hidden (see visibilitychange below).
  if (!document.hidden && token) timer = setTimeout(refresh, POLL_MS);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && token && !$("board").hidden) refresh();
});

// --- rendering ------------------------------------------------------------

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function statusBadge(status) {
  return element("span", status, `status status-${status}`);
}

function money(minor, currency) {
  const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** digits);
}

function when(timestamp) {
  return new Date(timestamp).toLocaleString();
}

function renderCounts(summary) {
  const list = $("counts");
  list.replaceChildren(
    ...Object.entries(summary.counts).map(([status, count]) => {
      const item = element("li", null, `count-${status}`);
      item.append(element("strong", String(count)), element("span", status));
      return item;
    }),
  );
}

function renderOrders(orders) {
  $("no-orders").hidden = orders.length > 0;
  const rows = orders.map((order) => {
    const row = element("tr");
    row.dataset.orderId = order.id;
    row.tabIndex = 0;
    // aria-current, not aria-selected: this is a table, not a grid widget.
    if (order.id === selectedOrder) row.setAttribute("aria-current", "true");
    row.append(
      cell(element("code", order.id.slice(0, 8), null), order.id),
      element("td", when(order.created_at)),
      element("td", money(order.total_minor, order.currency)),
      cell(statusBadge(order.status)),
    );
    row.addEventListener("click", () => select(order.id));
    row.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        select(order.id);
      }
    });
    announceChange(order);
    return row;
  });
  $("orders").replaceChildren(...rows);
}

function cell(child, title) {
  const td = element("td");
  td.append(child);
  if (title) td.title = title;
  return td;
}

// Screen readers hear status changes (not the first load).
function announceChange(order) {
  const before = knownStatuses.get(order.id);
  if (before && before !== order.status) {
    $("status-message").textContent = `Order ${order.id.slice(0, 8)} is now ${order.status}`;
  }
  knownStatuses.set(order.id, order.status);
}

function renderEvents(items) {
  $("events").replaceChildren(
    ...items.map((item) => {
      const li = element("li");
      li.append(
        element("code", item.order_id.slice(0, 8)),
        " ",
        statusBadge(item.status),
        element("span", item.reason ? ` ${item.reason}` : ""),
        element("div", when(item.at), "muted"),
      );
      return li;
    }),
  );
}

async function select(id) {
  selectedOrder = id;
  document
    .querySelectorAll("#orders tr")
    .forEach((row) => {
      if (row.dataset.orderId === id) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    });
  try {
    renderDetail(await api(`/orders/${id}`));
  } catch (error) {
    $("error").textContent = `Could not load the order: ${error.message}`;
  }
}

function renderDetail(order) {
  const section = $("detail");
  section.hidden = false;
  section.dataset.orderId = order.id;
  const facts = [
    ["Order", order.id],
    ["Status", order.status],
    ["Total", money(order.total_minor, order.currency)],
    ["Payment", order.payment_provider],
    ["Items", (order.lines || []).map((l) => `${l.quantity} × ${l.name}`).join(", ")],
  ];
  $("detail-facts").replaceChildren(
    ...facts.flatMap(([name, value]) => [element("dt", name), element("dd", value)]),
  );
  $("history").replaceChildren(
    ...(order.history || []).map((entry) => {
      const li = element("li");
      li.append(
        statusBadge(entry.status),
        element("span", entry.reason ? ` ${entry.reason}` : ""),
        element("div", when(entry.at), "muted"),
      );
      return li;
    }),
  );
}

// --- start ------------------------------------------------------------------

$("login-form").addEventListener("submit", signIn);
$("logout").addEventListener("click", () => signOut());
if (token) showBoard();
else signOut();
