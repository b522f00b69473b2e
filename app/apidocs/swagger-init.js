// Starts Swagger UI on /docs (a file, not an inline script: the page's CSP allows only
// this origin's scripts). validatorUrl null: the default badge asks an online validator.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  validatorUrl: null,
  showExtensions: true,
  showCommonExtensions: true,
});
