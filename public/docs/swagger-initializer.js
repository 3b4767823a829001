// Starts Swagger UI on this server's own contract. Kept in a file (not inline) because the CSP
// allows scripts from 'self' only.
(function () {
  'use strict';

  /**
   * Puts this origin first in the contract's server list, so "Try it out" calls the server that
   * serves these docs (whatever host and port it runs on) rather than the example URL in the
   * contract, which the CSP's connect-src would block anyway.
   */
  function thisServerFirst(spec) {
    const origin = window.location.origin;
    const servers = Array.isArray(spec.servers) ? spec.servers : [];
    spec.servers = [{ url: origin, description: 'This server' }, ...servers.filter((s) => s && s.url !== origin)];
    return spec;
  }

  /**
   * Swagger UI's server list is a <select> inside an empty <label>: it has no accessible name
   * (axe's select-name). The "Servers" title beside it becomes its name, whenever Swagger UI
   * renders the list anew.
   */
  function labelServers() {
    const select = document.querySelector('.swagger-ui .servers select');
    const title = document.querySelector('.swagger-ui .servers-title');
    if (!select || select.hasAttribute('aria-label')) return;
    if (title) {
      title.id = title.id || 'servers-title';
      select.setAttribute('aria-labelledby', title.id);
    } else {
      select.setAttribute('aria-label', 'Server');
    }
  }

  function start(spec) {
    new MutationObserver(labelServers).observe(document.getElementById('swagger-ui'), { childList: true, subtree: true });
    window.ui = SwaggerUIBundle({
      spec,
      dom_id: '#swagger-ui',
      // Off: with deep links each operation's path is a link inside the button that opens the
      // operation, a control within a control that screen readers and keyboards trip over
      // (axe's nested-interactive; swagger-api/swagger-ui#9570).
      deepLinking: false,
      presets: [SwaggerUIBundle.presets.apis],
      layout: 'BaseLayout',
      // Tokens pasted into "Authorize" stay in this tab's memory only, never in localStorage.
      persistAuthorization: false,
      // The default validator badge would load an image from a third-party host.
      validatorUrl: null,
      displayRequestDuration: true,
      displayOperationId: true,
      defaultModelsExpandDepth: 0,
      tryItOutEnabled: false,
    });
  }

  function fail(message) {
    const box = document.getElementById('swagger-ui');
    const p = document.createElement('p');
    p.className = 'swagger-ui';
    p.textContent = `Could not load the API contract (/openapi.json): ${message}`;
    box.replaceChildren(p);
  }

  fetch('/openapi.json', { headers: { Accept: 'application/json' } })
    .then((res) => {
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return res.json();
    })
    .then((spec) => start(thisServerFirst(spec)))
    .catch((error) => fail(error.message));
})();
