// Signing up and signing in.

import { api, signIn } from "./api.js";
import { element, field, onSubmit } from "./ui.js";

export function signInPage(view, done) {
  const status = element("p", { class: "error", role: "alert" });
  const form = element("form", { class: "card narrow" },
    element("h1", { text: "Sign in" }),
    ...field("email", "Email", { type: "email", autocomplete: "username", required: true }),
    ...field("password", "Password", { type: "password", autocomplete: "current-password", required: true }),
    element("button", { type: "submit", text: "Sign in" }),
    status,
    element("p", {}, "New here? ", element("a", { href: "#/signup", text: "Create an account" })));
  onSubmit(form, status, async (data) => {
    await signIn(data.get("email"), data.get("password"));
    done();
  });
  view.replaceChildren(form);
}

export function signUpPage(view, done) {
  const status = element("p", { class: "error", role: "alert" });
  const form = element("form", { class: "card narrow" },
    element("h1", { text: "Create an account" }),
    ...field("name", "Name", { autocomplete: "name", required: true, maxlength: 100 }),
    ...field("email", "Email", { type: "email", autocomplete: "email", required: true }),
    ...field("password", "Password (at least 8 characters)", { type: "password", autocomplete: "new-password", required: true, minlength: 8 }),
    element("button", { type: "submit", text: "Create account" }),
    status);
  onSubmit(form, status, async (data) => {
    const body = { name: data.get("name"), email: data.get("email"), password: data.get("password") };
    await api("/users", { method: "POST", body });
    await signIn(body.email, body.password);
    done();
  });
  view.replaceChildren(form);
}
