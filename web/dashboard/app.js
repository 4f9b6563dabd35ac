// Mart's order-tracking dashboard: plain JavaScript, no build step.
//
// It signs in with the public API (POST /auth/token) and then polls the same
// API every second, so statuses change on the page within two seconds of
// changing in the system. The API decides what the caller sees: a customer
// their own orders, an admin all of them. Data goes into the page as text,
// never as HTML. The API client and the DOM helpers are the storefront's
// (web/shop, served at /shop/ on the same origin), so the site has one of
// each and one session: signing in here signs in there.
import { api, session, signIn as startSession } from "/shop/api.js";
import { $, element, money, statusBadge, when } from "/shop/ui.js";

const POLL_MS = 1000;

let selectedOrder = null;
let knownStatuses = new Map();
let timer = null;
// One polling loop at a time: a refresh started while another is in flight
// (sign-in, tab shown again) replaces it, and the old one stops.
let generation = 0;

// --- signing in and out ---------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    await startSession($("email").value, $("password").value);
    $("password").value = "";
    await showBoard();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

function signOut(message = "") {
  generation++;
  session.clear();
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
  if (!document.hidden && session.token) timer = setTimeout(refresh, POLL_MS);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && session.token && !$("board").hidden) refresh();
});

// --- rendering ------------------------------------------------------------

function renderCounts(summary) {
  const list = $("counts");
  list.replaceChildren(
    ...Object.entries(summary.counts).map(([status, count]) =>
      element(
        "li",
        { class: `count-${status}` },
        element("strong", { text: String(count) }),
        element("span", { text: status }),
      ),
    ),
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
      element("td", { title: order.id }, element("code", { text: order.id.slice(0, 8) })),
      element("td", { text: when(order.created_at) }),
      element("td", { text: money(order.total_minor, order.currency) }),
      element("td", {}, statusBadge(order.status)),
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
    ...items.map((item) =>
      element(
        "li",
        {},
        element("code", { text: item.order_id.slice(0, 8) }),
        " ",
        statusBadge(item.status),
        element("span", { text: item.reason ? ` ${item.reason}` : "" }),
        element("div", { class: "muted", text: when(item.at) }),
      ),
    ),
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
    ...facts.flatMap(([name, value]) => [element("dt", { text: name }), element("dd", { text: value })]),
  );
  $("history").replaceChildren(
    ...(order.history || []).map((entry) =>
      element(
        "li",
        {},
        statusBadge(entry.status),
        element("span", { text: entry.reason ? ` ${entry.reason}` : "" }),
        element("div", { class: "muted", text: when(entry.at) }),
      ),
    ),
  );
}

// --- start ------------------------------------------------------------------

$("login-form").addEventListener("submit", signIn);
$("logout").addEventListener("click", () => signOut());
if (session.token) showBoard();
else signOut();
