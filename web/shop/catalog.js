// The product list (search and paging) and a product's page (live stock).

import { api } from "./api.js";
import { addToCart } from "./cart.js";
import { element, money, productImage, poll, announce } from "./ui.js";

const PAGE = 12;

// `#/?q=tea&cursor=...`: a search, one page of it.
export async function productList(view, query) {
  const q = query.get("q") || "";
  const cursor = query.get("cursor");
  const path = `/products?limit=${PAGE}${q ? `&q=${encodeURIComponent(q)}` : ""}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
  const page = await api(path);
  const available = await availability(page.items.map((p) => p.id));

  const heading = element("h1", { text: q ? `Results for “${q}”` : "Products" });
  const grid = element("ul", { class: "grid", "aria-label": "Products" },
    ...page.items.map((product) => productCard(product, available.get(product.id) ?? 0)));
  const empty = page.items.length ? null : element("p", { class: "muted", text: q ? "No product matches your search." : "No products yet." });
  view.replaceChildren(heading, grid, ...[empty, pager(q, cursor, page.next_cursor)].filter(Boolean));
  announce(`${page.items.length} products shown`);
}

// Stock records by product id; a product never stocked has none (and no
// entry, where asking for it alone would be a 404).
export async function stockOf(ids) {
  if (!ids.length) return new Map();
  const stock = await api(`/inventory?product_ids=${ids.join(",")}`);
  return new Map(stock.items.map((s) => [s.product_id, s]));
}

// Units available by product id (none for a product never stocked).
async function availability(ids) {
  const stock = await stockOf(ids);
  return new Map([...stock].map(([id, s]) => [id, s.available]));
}

function productCard(product, available) {
  const link = element("a", { href: `#/product/${product.id}` },
    productImage(product, "thumb"),
    element("h2", { text: product.name }));
  return element("li", { class: "card product" },
    link,
    element("p", { class: "price", text: money(product.price_minor, product.currency) }),
    stockNote(available));
}

function stockNote(available) {
  if (available <= 0) return element("p", { class: "stock out", text: "Out of stock" });
  return element("p", { class: "stock", text: available < 5 ? `Only ${available} left` : "In stock" });
}

// The API pages by cursor (forward only): "Next" follows it, "First page"
// starts the search again.
function pager(q, cursor, next) {
  const link = (c) => {
    const p = new URLSearchParams();
    if (q) p.set("q", q);
    if (c) p.set("cursor", c);
    const text = p.toString();
    return text ? `#/?${text}` : "#/";
  };
  const nav = element("nav", { class: "pager", "aria-label": "Pages" });
  if (cursor) nav.append(element("a", { href: link(null), text: "← First page" }));
  if (next) nav.append(element("a", { href: link(next), text: "Next page →" }));
  return nav;
}

// `#/product/<id>`: the product, with its stock refreshed every 2 s.
export async function productPage(view, id, session) {
  const product = await api(`/products/${encodeURIComponent(id)}`);
  const stockLine = element("p", { class: "stock", "aria-live": "polite" });
  const quantity = element("input", { id: "quantity", type: "number", min: 1, max: 1000, value: 1, required: true });
  const status = element("p", { class: "error", role: "alert" });
  const added = element("p", { class: "ok" });
  const add = element("button", { type: "submit", text: "Add to cart" });
  const form = element("form", { class: "buy" },
    element("label", { for: "quantity", text: "Quantity" }), quantity, add, status, added);
  let soldOut = false;
  let adding = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "";
    added.textContent = "";
    adding = true;
    add.disabled = true;
    try {
      await addToCart(session, product.id, Number(quantity.value));
      announce(`${product.name} added to your cart`);
      added.textContent = `Added ${quantity.value} to your cart.`;
    } catch (error) {
      status.textContent = error.message;
    } finally {
      adding = false;
      add.disabled = soldOut;
    }
  });
  view.replaceChildren(element("article", { class: "product-page" },
    productImage(product, "hero"),
    element("div", {},
      element("h1", { text: product.name }),
      element("p", { class: "price", text: money(product.price_minor, product.currency) }),
      product.category ? element("p", { class: "muted", text: product.category }) : null,
      element("p", { text: product.description }),
      stockLine,
      form)));
  return poll(2000, async () => {
    const available = (await availability([product.id])).get(product.id) ?? 0;
    const out = available <= 0;
    const text = out ? "Out of stock" : `${available} available`;
    // Unchanged text is not written again: the line is announced when set.
    if (stockLine.textContent !== text) stockLine.textContent = text;
    stockLine.classList.toggle("out", out);
    soldOut = out;
    add.disabled = out || adding;
  });
}
