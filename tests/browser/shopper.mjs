// What a shopper does in the storefront, step by step, for the browser
// tests that buy something (shop.mjs, shop-payfast.mjs).
import { base, expect } from "./browser.mjs";

export const cartCount = async (page) => Number(await page.locator("#cart-count").textContent());

export async function signUp(page, shopper) {
  await page.goto(`${base}/shop/`);
  await page.locator(".grid .product").first().waitFor({ timeout: 30_000 });
  await page.getByRole("link", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "Create an account" }).click();
  await page.getByLabel("Name").fill(shopper.name);
  await page.getByLabel("Email").fill(shopper.email);
  await page.getByLabel("Password (at least 8 characters)").fill(shopper.password);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("link", { name: "Orders" }).waitFor({ timeout: 30_000 });
}

export async function search(page, text) {
  await page.getByLabel("Search products").fill(text);
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("heading", { name: `Results for “${text}”` }).waitFor({ timeout: 30_000 });
}

// Finds `<tag> <name>` by searching for the tag and adds `quantity` from
// its page; waits for the cart's count to follow.
export async function addFromProductPage(page, tag, name, quantity) {
  await search(page, tag);
  await page.getByRole("link", { name: `${tag} ${name}` }).click();
  await page.getByText(/\d+ available/).waitFor({ timeout: 30_000 });
  await page.getByLabel("Quantity").fill(String(quantity));
  const before = await cartCount(page);
  await page.getByRole("button", { name: "Add to cart" }).click();
  await page.waitForFunction((n) => Number(document.querySelector("#cart-count").textContent) === n, before + quantity, { timeout: 30_000 });
}

// From the cart: the address, `payment` (the radio's label), and the order
// placed; returns its id once its page shows.
export async function checkOut(page, payment) {
  await page.getByRole("link", { name: /^Cart/ }).click();
  await page.getByRole("heading", { name: "Your cart" }).waitFor();
  await page.getByRole("link", { name: "Check out" }).click();
  await page.getByLabel("Street and number").fill("1 Test Street");
  await page.getByLabel("City").fill("Cape Town");
  await page.getByLabel("Postal code").fill("8001");
  await page.getByLabel("Country code (e.g. DE)").fill("ZA");
  await page.getByLabel(payment).check();
  await page.getByRole("button", { name: "Place order" }).click();
  await page.waitForURL(/#\/orders\/[0-9a-f-]{36}$/, { timeout: 30_000 });
  await page.evaluate(() => { window.notReloaded = true; });
  return page.url().split("/").pop();
}

// Waits, without reloading, for the order page to show `status`: a whole
// saga, so as long as the Rust tests give one on a loaded machine.
export async function followUntil(page, status, timeout = 180_000) {
  await page.locator("#order-status .status", { hasText: new RegExp(`^${status}$`) }).waitFor({ timeout });
  expect(await page.evaluate(() => window.notReloaded === true), "the order page reloaded");
}
