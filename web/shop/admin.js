// The admin's view: products and their stock, and orders to ship and
// deliver. The API refuses all of it to anyone but the admin; the page
// only hides the link.

import { api } from "./api.js";
import { stockOf } from "./catalog.js";
import { element, field, money, when, statusBadge, onSubmit, announce } from "./ui.js";

export async function adminPage(view) {
  const products = element("section", { class: "card", "aria-labelledby": "admin-products" });
  const orders = element("section", { class: "card", "aria-labelledby": "admin-orders" });
  view.replaceChildren(element("h1", { text: "Admin" }), products, orders);
  await Promise.all([productsPanel(products), ordersPanel(orders)]);
}

async function productsPanel(panel) {
  const page = await api("/products?limit=100");
  const onHand = await stockOf(page.items.map((p) => p.id));
  const editor = element("div", {});
  const redraw = () => productsPanel(panel);
  const currency = page.items.length ? page.items[0].currency : "EUR";
  panel.replaceChildren(
    element("h2", { id: "admin-products", text: "Products and stock" }),
    element("button", { type: "button", text: "New product", onclick: () => productForm(editor, null, null, currency, redraw) }),
    editor,
    element("table", { class: "lines" },
      element("thead", {}, element("tr", {},
        ...["Product", "Price", "On hand", "Reserved", ""].map((h) => element("th", { scope: "col", text: h })))),
      element("tbody", {}, ...page.items.map((p) => {
        const s = onHand.get(p.id);
        return element("tr", {},
          element("td", { text: p.name }),
          element("td", { text: money(p.price_minor, p.currency) }),
          element("td", { text: s ? String(s.on_hand) : "0" }),
          element("td", { text: s ? String(s.reserved) : "0" }),
          element("td", {}, element("button", {
            type: "button",
            class: "link",
            text: "Edit",
            "aria-label": `Edit ${p.name}`,
            onclick: () => productForm(editor, p, s, currency, redraw),
          })));
      }))));
}

// Creates (`product` null) or replaces a product, then sets its units on hand.
function productForm(editor, product, stock, currency, done) {
  const status = element("p", { class: "error", role: "alert" });
  const form = element("form", { class: "editor" },
    element("h3", { text: product ? `Edit ${product.name}` : "New product" }),
    ...field("p-name", "Name", { required: true, maxlength: 200, value: product && product.name }),
    ...field("p-description", "Description", { tag: "textarea", maxlength: 5000 }),
    ...field("p-category", "Category (a slug, e.g. kitchen)", { value: product && product.category, pattern: "[a-z0-9]+(-[a-z0-9]+)*" }),
    ...field("p-price", `Price in ${currency} cents`, { type: "number", min: 0, required: true, value: product && product.price_minor }),
    ...field("p-image", "Image URL (https:// or /shop/images/...)", { value: product && product.image_url }),
    ...field("p-stock", "Units on hand", { type: "number", min: 0, max: 1000000, required: true, value: stock ? stock.on_hand : 0 }),
    element("button", { type: "submit", text: "Save" }),
    status);
  form.querySelector("#p-description").value = product ? product.description : "";
  onSubmit(form, status, async (data) => {
    const body = {
      name: data.get("p-name"),
      description: data.get("p-description"),
      category: data.get("p-category") || null,
      price_minor: Number(data.get("p-price")),
      currency,
      image_url: String(data.get("p-image")).trim() || null,
    };
    const saved = product
      ? await api(`/products/${product.id}`, { method: "PUT", body })
      : await api("/products", { method: "POST", body });
    // Created: saving again (say, after the stock failed) edits it.
    product = saved;
    await api(`/inventory/${saved.id}`, { method: "PUT", body: { on_hand: Number(data.get("p-stock")) } });
    announce(`${saved.name} saved`);
    editor.replaceChildren();
    await done();
  });
  editor.replaceChildren(form);
  form.querySelector("input").focus();
}

const NEXT = { paid: "shipped", shipped: "delivered" };

async function ordersPanel(panel) {
  const page = await api("/orders?limit=50");
  const status = element("p", { class: "error", role: "alert" });
  const redraw = () => ordersPanel(panel);
  panel.replaceChildren(
    element("h2", { id: "admin-orders", text: "Orders" }),
    status,
    element("table", { class: "lines" },
      element("thead", {}, element("tr", {},
        ...["Order", "Placed", "Total", "Status", ""].map((h) => element("th", { scope: "col", text: h })))),
      element("tbody", {}, ...page.items.map((order) => {
        const next = NEXT[order.status];
        const move = next ? element("button", {
          type: "button",
          text: `Mark ${next}`,
          "aria-label": `Mark order ${order.id.slice(0, 8)} ${next}`,
          onclick: async () => {
            status.textContent = "";
            try {
              await api(`/orders/${order.id}/status`, { method: "PUT", body: { status: next } });
              announce(`Order ${order.id.slice(0, 8)} marked ${next}`);
              await redraw();
            } catch (error) {
              status.textContent = error.message;
            }
          },
        }) : null;
        return element("tr", { "data-order-id": order.id },
          element("td", {}, element("a", { href: `#/orders/${order.id}`, text: order.id.slice(0, 8) })),
          element("td", { text: when(order.created_at) }),
          element("td", { text: money(order.total_minor, order.currency) }),
          element("td", {}, statusBadge(order.status)),
          element("td", {}, move));
      }))));
}
