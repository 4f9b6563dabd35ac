// A signed-in shopper stays signed in while access tokens expire (Debian's
// Chromium, playwright-core). Run by tests/tests/shop.rs against a host
// whose access tokens live MART_TTL_SECS seconds (the services accept one
// 30 s longer); it passes:
//   MART_URL, MART_ARTIFACTS, MART_EMAIL, MART_PASSWORD (a customer with
//   one order, MART_ORDER_ID), MART_TTL_SECS
// Exits non-zero, saying why, on the first expectation that fails.
import { join } from "node:path";
import { artifacts, base, env, expect, launch, run, watchErrors } from "./browser.mjs";

const browser = await launch();
const email = env("MART_EMAIL");
let password = env("MART_PASSWORD");
const order = env("MART_ORDER_ID");
const ttl = Number(env("MART_TTL_SECS"));
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const errors = watchErrors(page, "shop session");
// Renewals the page asks for: POST /auth/token with a refresh token.
let renewals = 0;
page.on("request", (r) => {
  if (r.method() === "POST" && new URL(r.url()).pathname === "/auth/token" && (r.postData() || "").includes("refresh_token")) renewals++;
});

// The session the page keeps: {access_token, refresh_token, renew_at} (a
// bare access token is read as one without a refresh token).
const kept = () => page.evaluate(() => {
  const raw = sessionStorage.getItem("mart.token");
  try {
    return JSON.parse(raw);
  } catch {
    return { access_token: raw };
  }
});
const orderRow = () => page.locator("table.lines tbody tr", { hasText: order.slice(0, 8) });

async function signIn() {
  await page.goto(`${base}/shop/#/signin`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "Orders" }).waitFor({ timeout: 30_000 });
}

async function seeOrders() {
  await page.getByRole("link", { name: "Orders" }).click();
  await page.getByRole("heading", { name: "Your orders" }).waitFor({ timeout: 30_000 });
  await orderRow().waitFor({ timeout: 30_000 });
}

// Waits (from outside the page) until the services refuse `token`.
async function untilRefused(token) {
  const deadline = Date.now() + (ttl + 30 + 120) * 1000;
  for (;;) {
    const r = await fetch(`${base}/orders?limit=1`, { headers: { authorization: `Bearer ${token}` } });
    if (r.status === 401) return;
    expect(r.ok, `GET /orders answered ${r.status}`);
    expect(Date.now() < deadline, `the access token still works ${ttl + 150} s after it was issued`);
    await new Promise((done) => setTimeout(done, 2_000));
  }
}

let first;

// Signed in, the access token expires while the shopper is on the home
// page; the orders page still shows their order: the page renewed the
// session ahead of expiry, so no request was refused.
async function ordersAfterTheAccessTokenExpired() {
  await signIn();
  first = await kept();
  expect(first && first.access_token, `the session keeps no access token: ${JSON.stringify(first)}`);
  await seeOrders();
  await page.getByRole("link", { name: "Mart" }).click();
  await page.locator(".grid .product").first().waitFor({ timeout: 30_000 });
  // The page may have renewed already; wait for the token it holds now.
  const held = await kept();
  await untilRefused(held.access_token);
  await seeOrders();
  expect(!page.url().includes("#/signin"), `sent to ${page.url()}`);
  const now = await kept();
  expect(now.refresh_token, `the session keeps no refresh token: ${JSON.stringify(now)}`);
  expect(now.access_token !== held.access_token && now.refresh_token !== held.refresh_token,
    "the session holds a new access token and a new refresh token");
  expect(renewals >= 1, "the page never renewed its session");
  expect(await page.evaluate(() => localStorage.length) === 0, "nothing is kept in localStorage");
  expect(errors.length === 0, errors.join("\n"));
  await page.screenshot({ path: join(artifacts, "shop-session.png"), fullPage: true });
  console.log("the shopper saw their orders after the access token expired");
}

// Requests that meet a refused access token at once share one renewal
// (a refresh token works once), then each is sent again and answered.
async function parallelRequestsShareOneRenewal() {
  const before = renewals;
  const seen = await page.evaluate(async (stale) => {
    const { api, session } = await import("/shop/api.js");
    session.token = stale;
    session.renewAt = Date.now() + 3_600_000;
    const [me, orders, one] = await Promise.all([api("/users/me"), api("/orders?limit=50"), api("/orders?limit=1")]);
    return { email: me.email, orders: orders.items.map((o) => o.id), one: one.items.length, renewed: session.token !== stale };
  }, first.access_token);
  expect(seen.email === email && seen.orders.includes(order) && seen.one === 1 && seen.renewed, JSON.stringify(seen));
  expect(renewals - before === 1, `three parallel requests renewed ${renewals - before} times`);
  console.log("parallel requests shared one renewal");
}

// A reload with an expired access token: the page renews and goes on.
async function aReloadRenews() {
  await page.evaluate((stale) => {
    const session = JSON.parse(sessionStorage.getItem("mart.token"));
    sessionStorage.setItem("mart.token", JSON.stringify({ ...session, access_token: stale, renew_at: Date.now() + 3_600_000 }));
  }, first.access_token);
  const before = renewals;
  await page.reload();
  await page.getByRole("heading", { name: "Your orders" }).waitFor({ timeout: 30_000 });
  await orderRow().waitFor({ timeout: 30_000 });
  expect(renewals - before === 1, `the reload renewed ${renewals - before} times`);
  console.log("a reload with an expired access token renewed the session");
}

// Signing out forgets both tokens; after a password change the session
// cannot be renewed, and the shopper is signed out.
async function signOutAndRevocation() {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("link", { name: "Sign in" }).waitFor({ timeout: 30_000 });
  expect(await kept() === null, "signing out left the session in sessionStorage");

  await signIn();
  const { access_token: token } = await kept();
  const changed = `${password} changed`;
  const r = await fetch(`${base}/users/me`, {
    method: "PATCH",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ password: changed, current_password: password }),
  });
  expect(r.ok, `changing the password answered ${r.status}: ${await r.text()}`);
  password = changed;
  await page.goto(`${base}/shop/#/orders`);
  await page.reload();
  await page.getByRole("button", { name: "Sign in" }).waitFor({ timeout: 30_000 });
  expect(await kept() === null, "a refused renewal left the session in sessionStorage");
  console.log("a session whose password changed ended at its renewal");
}

await run(browser, [
  ordersAfterTheAccessTokenExpired,
  parallelRequestsShareOneRenewal,
  aReloadRenews,
  signOutAndRevocation,
  async () => {
    // The stale tokens used on purpose are refused (401) and Chromium logs
    // each as a failed resource; nothing else may be logged.
    const other = errors.filter((e) => !e.includes("status of 401 (Unauthorized)"));
    expect(other.length === 0, other.join("\n"));
  },
], "shop session checks passed");
