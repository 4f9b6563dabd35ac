// Starts Swagger UI on the API document this same host serves. An external
// file rather than an inline script, so the page's CSP can forbid inline code.
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#api-docs",
    deepLinking: true,
    // Keeps a pasted bearer token across reloads (in this browser only).
    persistAuthorization: true,
    tryItOutEnabled: true,
  });
});
