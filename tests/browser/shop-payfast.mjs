// Paying with PayFast from the storefront (Debian's Chromium,
// playwright-core). Run by tests/tests/payfast.rs against a host set up
// for PayFast's fake, which plays PayFast: the order shows the link to
// PayFast's page, the buyer goes there and back, the test sends the ITN of
// a completed payment, and the order page must turn paid without a
// reload. It passes:
//   MART_URL, MART_ARTIFACTS, MART_TAG (the product is "<tag> tongs"),
//   MART_EMAIL, MART_PASSWORD (the shopper to sign up), MART_PAYFAST_PAGE
import { join } from "node:path";
import { artifacts, env, expect, launch, run, watchErrors } from "./browser.mjs";
import { addFromProductPage, checkOut, followUntil, signUp } from "./shopper.mjs";

const browser = await launch();

async function payWithPayFast() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = watchErrors(page, "shop-payfast");
  await signUp(page, { name: "Thandi", email: env("MART_EMAIL"), password: env("MART_PASSWORD") });
  await addFromProductPage(page, env("MART_TAG"), "tongs", 1);
  const order = await checkOut(page, "PayFast (you pay on PayFast's page)");

  // Once the stock is held the page offers PayFast's page for this order.
  const pay = page.getByRole("link", { name: "Pay with PayFast" });
  await pay.waitFor({ timeout: 180_000 });
  const href = await pay.getAttribute("href");
  expect(href.startsWith(`${env("MART_PAYFAST_PAGE")}?`), `the link goes to ${href}`);
  expect(new URL(href).searchParams.get("m_payment_id") === order, `the link pays another order: ${href}`);
  await page.screenshot({ path: join(artifacts, "shop-payfast-pay.png"), fullPage: true });
  console.log(`order ${order} offers PayFast's page`);

  // The buyer pays on PayFast's page (the fake) and comes back; PayFast's
  // ITN (sent by the test once the buyer was there) makes the order paid.
  await pay.click();
  await page.getByText("PayFast's payment page").waitFor({ timeout: 30_000 });
  await page.goBack();
  await page.locator("#order-status .status").waitFor({ timeout: 30_000 });
  await page.evaluate(() => { window.notReloaded = true; });
  await followUntil(page, "paid");
  await pay.waitFor({ state: "detached", timeout: 30_000 });
  await page.screenshot({ path: join(artifacts, "shop-payfast-paid.png"), fullPage: true });
  console.log("the PayFast order turned paid on the page");
  expect(errors.length === 0, errors.join("\n"));
  await page.close();
}

await run(browser, [payWithPayFast], "payfast checks passed");
