// Bootstrap 5.3 colour modes: data-bs-theme follows the system's light or dark preference, and
// changes with it while the page is open. A classic script in <head>, neither deferred nor a
// module, so it runs before the body is parsed and the first paint has the right colours; a
// file rather than inline because the CSP allows no inline script.
(function () {
  'use strict';

  var dark = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;

  function apply() {
    document.documentElement.setAttribute('data-bs-theme', dark && dark.matches ? 'dark' : 'light');
  }

  apply();
  if (dark) dark.addEventListener('change', apply);
})();
