// Mart's storefront: plain ES modules served as they are (no build step,
// no CDN), talking to the public API only. Pages are hash routes, so the
// one static component serves them all:
//   #/                  products (search with ?q=, paging with ?cursor=)
//   #/product/<id>      a product, its stock live
//   #/signin #/signup   accounts
//   #/cart #/checkout   the cart and placing the order
//   #/orders            the shopper's orders; #/orders/<id> one, live
//   #/admin             products, stock and shipping (admin only)

import { resume, session } from "./api.js";
import { signInPage, signUpPage } from "./account.js";
import { cartPage, checkoutPage, refreshCount } from "./cart.js";
import { productList, productPage } from "./catalog.js";
import { orderHistory, orderPage } from "./orders.js";
import { adminPage } from "./admin.js";
import { $, showError } from "./ui.js";

// Pages that need a signed-in shopper send others to #/signin first.
const routes = [
  [/^\/$/, (view, _m, query) => productList(view, query)],
  [/^\/product\/([0-9a-f-]{36})$/, (view, m) => productPage(view, m[1], session)],
  [/^\/signin$/, (view) => signInPage(view, afterSignIn)],
  [/^\/signup$/, (view) => signUpPage(view, afterSignIn)],
  [/^\/cart$/, (view) => cartPage(view, session), "signed-in"],
  [/^\/checkout$/, (view) => checkoutPage(view, session), "signed-in"],
  [/^\/orders$/, (view) => orderHistory(view), "signed-in"],
  [/^\/orders\/([0-9a-f-]{36})$/, (view, m) => orderPage(view, m[1]), "signed-in"],
  [/^\/admin$/, (view) => adminPage(view), "admin"],
];

let stopPage = null;
// Where to go back to after signing in.
let wanted = null;
// Each render is numbered: a page still loading when another was asked
// for is dropped (its polling stopped) instead of replacing the new one.
let rendering = 0;

async function render() {
  if (stopPage) stopPage();
  stopPage = null;
  const mine = ++rendering;
  showError(null);
  const [path, search] = (location.hash.slice(1) || "/").split("?");
  const query = new URLSearchParams(search || "");
  const route = routes.find(([pattern]) => pattern.test(path));
  if (!route) {
    show(notFound());
    return;
  }
  const [pattern, page, needs] = route;
  if (needs && !session.user) {
    wanted = location.hash;
    location.hash = "#/signin";
    return;
  }
  if (needs === "admin" && !session.admin) {
    show(notFound());
    return;
  }
  $("search-text").value = path === "/" ? query.get("q") || "" : "";
  // The page builds into a container of its own, shown once it is ready.
  const view = document.createElement("div");
  try {
    const stop = await page(view, path.match(pattern), query);
    if (mine !== rendering) {
      if (typeof stop === "function") stop();
      return;
    }
    if (typeof stop === "function") stopPage = stop;
    show(view);
  } catch (error) {
    if (mine !== rendering) return;
    if (error.status === 401) {
      session.clear();
      showNav();
      wanted = location.hash;
      location.hash = "#/signin";
      return;
    }
    show(document.createElement("div"));
    showError(error);
  }
}

// Puts a page in <main> and moves focus there (keyboard and screen-reader
// users start at the new content).
function show(content) {
  $("view").replaceChildren(content);
  $("view").focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

function notFound() {
  const p = document.createElement("p");
  p.textContent = "There is no such page.";
  return p;
}

function afterSignIn() {
  showNav();
  refreshCount(session).catch(showError);
  location.hash = wanted && wanted !== "#/signin" ? wanted : "#/";
  wanted = null;
}

// Shows the links for who is signed in (data-when on the nav items).
function showNav() {
  const state = new Set([session.user ? "signed-in" : "signed-out"]);
  if (session.admin) state.add("admin");
  for (const item of document.querySelectorAll("[data-when]")) {
    item.hidden = !state.has(item.dataset.when);
  }
}

$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = $("search-text").value.trim();
  location.hash = q ? `#/?q=${encodeURIComponent(q)}` : "#/";
});

$("sign-out").addEventListener("click", () => {
  session.clear();
  showNav();
  $("cart-count").textContent = "0";
  location.hash = "#/";
});

// Only `#/...` hashes are pages; the skip link moves focus without one.
window.addEventListener("hashchange", () => {
  if (location.hash === "" || location.hash.startsWith("#/")) render();
});
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  $("view").focus();
});

try {
  await resume();
} catch (error) {
  showError(error);
}
showNav();
refreshCount(session).catch(showError);
render();
