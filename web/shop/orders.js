// The shopper's orders, and one order followed live as the saga moves it.

import { api } from "./api.js";
import { element, money, when, statusBadge, poll, announce } from "./ui.js";

// Statuses after which nothing changes by itself any more.
const SETTLED = new Set(["cancelled", "delivered", "refunded"]);

// `#/orders`: newest first.
export async function orderHistory(view) {
  const page = await api("/orders?limit=50");
  const heading = element("h1", { text: "Your orders" });
  if (!page.items.length) {
    view.replaceChildren(heading, element("p", { class: "muted", text: "No orders yet." }));
    return;
  }
  view.replaceChildren(heading, element("table", { class: "lines" },
    element("caption", { class: "sr-only", text: "Your orders, newest first" }),
    element("thead", {}, element("tr", {},
      ...["Order", "Placed", "Total", "Status"].map((h) => element("th", { scope: "col", text: h })))),
    element("tbody", {}, ...page.items.map((order) => element("tr", {},
      element("td", {}, element("a", { href: `#/orders/${order.id}`, text: order.id.slice(0, 8) })),
      element("td", { text: when(order.created_at) }),
      element("td", { text: money(order.total_minor, order.currency) }),
      element("td", {}, statusBadge(order.status)))))));
}

// `#/orders/<id>`: refreshed every second until it settles; each change
// is announced (placed → reserved → paid, or cancelled with the reason).
export async function orderPage(view, id) {
  let shown = null;
  let shownLink = null;
  const status = element("p", { class: "order-status", id: "order-status" });
  const reason = element("p", { class: "reason" });
  const pay = element("p", {});
  const history = element("ol", { class: "history", "aria-label": "History" });
  const lines = element("ul", { class: "order-lines" });
  const total = element("p", { class: "total" });
  const cancel = element("button", { type: "button", class: "secondary", text: "Cancel order", hidden: true });
  const cancelStatus = element("p", { class: "error", role: "alert" });
  cancel.addEventListener("click", async () => {
    cancelStatus.textContent = "";
    try {
      await api(`/orders/${id}/cancel`, { method: "POST" });
    } catch (error) {
      cancelStatus.textContent = error.message;
    }
  });
  view.replaceChildren(element("article", { class: "card order" },
    element("h1", { text: `Order ${id.slice(0, 8)}` }),
    status, reason, pay, total, lines,
    element("h2", { text: "History" }), history, cancel, cancelStatus));

  let stop = null;
  stop = poll(1000, async () => {
    const order = await api(`/orders/${id}`);
    if (order.status !== shown) {
      if (shown !== null) announce(`Order ${id.slice(0, 8)} is now ${order.status}`);
      shown = order.status;
    }
    status.replaceChildren("Status: ", statusBadge(order.status));
    const last = order.history[order.history.length - 1];
    reason.textContent = order.status === "cancelled" && last && last.reason ? `Reason: ${last.reason}` : "";
    const link = payLink(order);
    if (link !== shownLink) {
      shownLink = link;
      pay.replaceChildren(...(link ? [element("a", { class: "button", href: link, rel: "noopener", text: "Pay with PayFast" })] : []));
    }
    total.textContent = `Total ${money(order.total_minor, order.currency)}`;
    lines.replaceChildren(...order.lines.map((l) => element("li", {
      text: `${l.quantity} × ${l.name} (${money(l.unit_price_minor, order.currency)})`,
    })));
    history.replaceChildren(...order.history.map((h) => element("li", {},
      statusBadge(h.status), ` ${when(h.at)}`, h.reason ? ` (${h.reason})` : "")));
    cancel.hidden = !["pending", "reserved", "paid"].includes(order.status);
    if (SETTLED.has(order.status) && stop) stop();
  });
  return () => stop();
}

// PayFast: where the buyer finishes paying, while the order waits for it
// (rebuilt only when it changes, so focus and a click on it survive the
// refreshes).
function payLink(order) {
  if (!order.payment_redirect_url || !["pending", "reserved"].includes(order.status)) return null;
  return order.payment_redirect_url;
}
