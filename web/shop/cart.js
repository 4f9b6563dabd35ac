// The cart (one open cart per signed-in shopper, remembered for the
// session) and the checkout that turns it into an order.

import { api } from "./api.js";
import { $, element, field, money, onSubmit, announce } from "./ui.js";

// Where the signed-in shopper's cart id is kept for the session.
const cartKey = (session) => `mart.shop.cart.${session.user.id}`;

// The shopper's open cart, created on first use; a cart already checked
// out (or gone) is replaced by a new one. Callers at the same moment share
// one lookup, so two quick adds cannot create two carts.
let opening = null;

function openCart(session) {
  if (!opening) opening = findOrCreateCart(session).finally(() => { opening = null; });
  return opening;
}

async function findOrCreateCart(session) {
  const key = cartKey(session);
  const known = sessionStorage.getItem(key);
  if (known) {
    try {
      const cart = await api(`/carts/${known}`);
      if (cart.status === "open") return cart;
    } catch (error) {
      if (error.status !== 404) throw error;
    }
  }
  const cart = await api("/carts", { method: "POST" });
  sessionStorage.setItem(key, cart.id);
  return cart;
}

export async function addToCart(session, productId, quantity) {
  if (!session.user) {
    location.hash = "#/signin";
    throw new Error("Sign in to add to your cart.");
  }
  const cart = await openCart(session);
  const updated = await api(`/carts/${cart.id}/items`, {
    method: "POST",
    body: { product_id: productId, quantity },
  });
  showCount(updated);
}

export async function refreshCount(session) {
  if (!session.user) return showCount(null);
  const known = sessionStorage.getItem(cartKey(session));
  if (!known) return showCount(null);
  const cart = await api(`/carts/${known}`).catch(() => null);
  showCount(cart && cart.status === "open" ? cart : null);
}

function showCount(cart) {
  const units = cart ? cart.lines.reduce((sum, line) => sum + line.quantity, 0) : 0;
  $("cart-count").textContent = String(units);
}

// `#/cart`: lines with their quantities, changed or removed in place.
export async function cartPage(view, session) {
  const cart = await openCart(session);
  showCount(cart);
  const heading = element("h1", { text: "Your cart" });
  if (!cart.lines.length) {
    view.replaceChildren(heading, element("p", { class: "muted" }, "Your cart is empty. ", element("a", { href: "#/", text: "Browse products" })));
    return;
  }
  const status = element("p", { class: "error", role: "alert" });
  const rows = cart.lines.map((line) => cartRow(cart, line, status, () => cartPage(view, session)));
  view.replaceChildren(heading,
    element("table", { class: "lines" },
      element("caption", { class: "sr-only", text: "Lines in your cart" }),
      element("thead", {}, element("tr", {},
        ...["Product", "Price", "Quantity", "Total", ""].map((h) => element("th", { scope: "col", text: h })))),
      element("tbody", {}, ...rows)),
    element("p", { class: "total", text: `Total ${money(cart.total_minor, cart.currency)}` }),
    status,
    element("a", { class: "button", href: "#/checkout", text: "Check out" }));
}

function cartRow(cart, line, status, redraw) {
  const id = `qty-${line.product_id}`;
  const quantity = element("input", { id, type: "number", min: 1, max: 1000, value: line.quantity, class: "qty" });
  const change = async (request) => {
    status.textContent = "";
    try {
      showCount(await request());
      await redraw();
    } catch (error) {
      status.textContent = error.message;
    }
  };
  quantity.addEventListener("change", () => change(() => api(`/carts/${cart.id}/items/${line.product_id}`, {
    method: "PUT",
    body: { quantity: Number(quantity.value) },
  })));
  const remove = element("button", {
    type: "button",
    class: "link",
    text: "Remove",
    "aria-label": `Remove ${line.name}`,
    onclick: () => change(() => api(`/carts/${cart.id}/items/${line.product_id}`, { method: "DELETE" })),
  });
  return element("tr", {},
    element("td", { text: line.name }),
    element("td", { text: money(line.unit_price_minor, cart.currency) }),
    element("td", {}, element("label", { for: id, class: "sr-only", text: `Quantity of ${line.name}` }), quantity),
    element("td", { text: money(line.line_total_minor, cart.currency) }),
    element("td", {}, remove));
}

// `#/checkout`: the address and how to pay; placing the order goes to its page.
export async function checkoutPage(view, session) {
  const cart = await openCart(session);
  if (!cart.lines.length) {
    location.hash = "#/cart";
    return;
  }
  const status = element("p", { class: "error", role: "alert" });
  const form = element("form", { class: "card narrow checkout" },
    element("h1", { text: "Check out" }),
    element("p", { text: `${cart.lines.length} lines, ${money(cart.total_minor, cart.currency)}` }),
    element("fieldset", {},
      element("legend", { text: "Shipping address" }),
      ...field("ship-name", "Full name", { autocomplete: "name", required: true, value: session.user.name }),
      ...field("ship-line1", "Street and number", { autocomplete: "address-line1", required: true }),
      ...field("ship-city", "City", { autocomplete: "address-level2", required: true }),
      ...field("ship-postal", "Postal code", { autocomplete: "postal-code", required: true }),
      ...field("ship-country", "Country code (e.g. DE)", { autocomplete: "country", required: true, pattern: "[A-Za-z]{2}", maxlength: 2 })),
    element("fieldset", {},
      element("legend", { text: "Payment" }),
      radio("pay-card", "Card (test card, always accepted)", "fake", true),
      radio("pay-payfast", "PayFast (you pay on PayFast's page)", "payfast", false)),
    element("button", { type: "submit", text: "Place order" }),
    status);
  // One key per visit of this page: a retried submit cannot order twice.
  const idempotencyKey = randomKey();
  onSubmit(form, status, async (data) => {
    const provider = data.get("payment");
    const order = await api("/orders", {
      method: "POST",
      headers: { "idempotency-key": idempotencyKey },
      body: {
        cart_id: cart.id,
        shipping_address: {
          name: data.get("ship-name"),
          line1: data.get("ship-line1"),
          city: data.get("ship-city"),
          postal_code: data.get("ship-postal"),
          country: String(data.get("ship-country")).toUpperCase(),
        },
        payment: provider === "fake" ? { provider, token: "tok_visa" } : { provider },
      },
    });
    showCount(null);
    announce("Order placed");
    location.hash = `#/orders/${order.id}`;
  });
  view.replaceChildren(form);
}

// 128 random bits as hex (crypto.randomUUID needs a secure context; a shop
// served over plain HTTP on a LAN has none).
function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function radio(id, label, value, checked) {
  return element("div", { class: "choice" },
    element("input", { id, type: "radio", name: "payment", value, checked }),
    element("label", { for: id, text: label }));
}
