// The dashboard and the docs page in a real browser: Debian's Chromium,
// driven by playwright-core. Run by tests/tests/dashboard.rs, which starts
// the host and passes what this needs in the environment:
//   MART_URL, MART_EMAIL, MART_PASSWORD, MART_PRODUCT_ID, MART_ARTIFACTS
// Exits non-zero, saying why, on the first expectation that fails.
import { join } from "node:path";
import { artifacts, base, env, expect, launch, run, watchErrors } from "./browser.mjs";

const browser = await launch();

async function dashboardShowsAnOrderTurnPaid() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = watchErrors(page, "dashboard");
  await page.goto(`${base}/dashboard`);
  expect(new URL(page.url()).pathname === "/dashboard/", `/dashboard should land on /dashboard/, got ${page.url()}`);

  await page.getByLabel("Email").fill(env("MART_EMAIL"));
  await page.getByLabel("Password").fill(env("MART_PASSWORD"));
  await page.getByRole("button", { name: "Sign in" }).click();
  // Generous waits: signing in runs a memory-hard password check, and the
  // machine may be busy with other tests.
  await page.locator("#board").waitFor({ state: "visible", timeout: 30_000 });
  await page.getByText(`Signed in as ${env("MART_EMAIL")}`).waitFor({ timeout: 30_000 });

  // Place an order through the API, as the signed-in customer.
  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem("mart.token") || "{}").access_token);
  expect(token, "the page keeps the access token after signing in");
  const placed = await fetch(`${base}/orders`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      "idempotency-key": `browser-${Date.now()}`,
    },
    body: JSON.stringify({
      items: [{ product_id: env("MART_PRODUCT_ID"), quantity: 1 }],
      shipping_address: { name: "Browser Buyer", line1: "1 Test Street", city: "Cape Town", postal_code: "8001", country: "ZA" },
      payment: { provider: "fake", token: "tok_visa" },
    }),
  });
  const answer = await placed.text();
  expect(placed.status === 201, `placing the order answered ${placed.status}: ${answer}`);
  const order = JSON.parse(answer);
  console.log(`placed order ${order.id}`);

  // The page was not reloaded: polling brings the order in and then `paid`.
  const row = page.locator(`#orders tr[data-order-id="${order.id}"]`);
  await row.waitFor({ timeout: 30_000 });
  await row.locator(".status", { hasText: /^paid$/ }).waitFor({ timeout: 180_000 });
  console.log("the order turned paid on the page");

  // Counts, recent events and the history follow without a reload. The
  // counts come from a request made beside the orders list, so they may
  // catch up one refresh later. How soon is a latency, not asserted here:
  // on a loaded machine one refresh can take seconds.
  const paidCounted = await page
    .waitForFunction(
      () => Number(document.querySelector("#counts .count-paid strong")?.textContent) >= 1,
      null,
      { timeout: 30_000 },
    )
    .then(() => true, () => false);
  const paidCount = await page.locator("#counts .count-paid strong").textContent();
  expect(paidCounted, `the paid count still shows ${paidCount} 30 s after the order turned paid`);
  await page.locator("#events li", { hasText: order.id.slice(0, 8) }).first().waitFor({ timeout: 30_000 });
  await row.click();
  await page.locator(`#detail[data-order-id="${order.id}"]`).waitFor({ timeout: 30_000 });
  const history = await page.locator("#history .status").allTextContents();
  expect(history[0] === "pending" && history.at(-1) === "paid", `history reads ${history.join(" → ")}`);

  await page.screenshot({ path: join(artifacts, "dashboard.png"), fullPage: true });
  expect(errors.length === 0, errors.join("\n"));
  await page.close();
}

async function docsShowTheApi() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = watchErrors(page, "docs");
  await page.goto(`${base}/docs`);
  await page.locator(".opblock").first().waitFor({ timeout: 30_000 });
  const operations = await page.locator(".opblock").count();
  expect(operations >= 20, `the docs page lists ${operations} operations`);
  await page.getByText("Mart API", { exact: false }).first().waitFor();
  await page.screenshot({ path: join(artifacts, "docs.png") });
  expect(errors.length === 0, errors.join("\n"));
  await page.close();
}

await run(browser, [dashboardShowsAnOrderTurnPaid, docsShowTheApi], "browser checks passed");
