// Small DOM helpers: data goes into the page as text, never as HTML.

export const $ = (id) => document.getElementById(id);

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function money(minor, currency) {
  const format = new Intl.NumberFormat("en", { style: "currency", currency });
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** digits);
}

export function when(timestamp) {
  return new Date(timestamp).toLocaleString("en");
}

export function statusBadge(status) {
  return element("span", { class: `status status-${status}`, text: status });
}

const PLACEHOLDER = "/shop/images/placeholder.svg";

// A product's picture, or the placeholder when it has none or it fails to load.
export function productImage(product, className) {
  const image = element("img", {
    src: product.image_url || PLACEHOLDER,
    alt: "",
    class: className,
    loading: "lazy",
    width: 320,
    height: 240,
  });
  image.addEventListener("error", () => {
    if (!image.src.endsWith(PLACEHOLDER)) image.src = PLACEHOLDER;
  }, { once: true });
  return image;
}

// Says `message` to screen readers (the page's polite live region).
export function announce(message) {
  $("announce").textContent = message;
}

export function showError(error) {
  $("error").textContent = error ? error.message || String(error) : "";
}

// A labelled input: `<label>` + `<input>` sharing an id.
export function field(id, label, attributes = {}) {
  const input = element(attributes.tag || "input", { id, name: id, ...attributes, tag: undefined });
  return [element("label", { for: id, text: label }), input];
}

// Runs `action` for a form's submit, with its submit button disabled meanwhile
// and the API's message shown in `status` when it fails.
export function onSubmit(form, status, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    status.textContent = "";
    try {
      await action(new FormData(form));
    } catch (error) {
      status.textContent = error.message;
    } finally {
      if (button) button.disabled = false;
    }
  });
}

// Calls `tick` now and every `ms` until the returned stop() is called;
// paused while the tab is hidden. One tick at a time: showing the tab
// again while a tick is in flight does not start a second loop, and a tick
// that ends after stop() changes nothing.
export function poll(ms, tick) {
  let timer = null;
  let stopped = false;
  let running = false;
  const run = async () => {
    if (stopped || running) return;
    running = true;
    clearTimeout(timer);
    try {
      await tick();
      if (!stopped) showError(null);
    } catch (error) {
      if (!stopped) showError(error);
    } finally {
      running = false;
    }
    if (!stopped && !document.hidden) timer = setTimeout(run, ms);
  };
  const visible = () => {
    if (!document.hidden) run();
  };
  document.addEventListener("visibilitychange", visible);
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", visible);
  };
}
