// Starts Swagger UI on the API document this same host serves. An external
// file rather than an inline script, so the page's CSP can forbid inline code.
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#api-docs",
    deepLinking: true,
    // A pasted bearer token lives only as long as the page: persisting it
    // would put it in localStorage, readable by any script on the shop's
    // origin long after the tab is closed.
    persistAuthorization: false,
    tryItOutEnabled: true,
  });
});
