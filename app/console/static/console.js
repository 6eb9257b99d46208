// The console's small enhancements; every page works without this file.
(function () {
  "use strict";
  // A button with data-confirm asks before its form is sent.
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var message = (button && button.getAttribute("data-confirm")) ||
      event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });
  // Copy buttons: data-copy names the element whose text is copied.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (source) {
      navigator.clipboard.writeText(source.textContent.trim());
      button.textContent = "Copied";
    }
  });
})();

// fetch() with the console's CSRF header, for other scripts of ours.
window.tidingsFetch = function (url, options) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  options = options || {};
  options.headers = Object.assign({}, options.headers || {}, {
    "X-CSRF-Token": meta ? meta.content : "",
    "Accept": "application/json"
  });
  options.credentials = "same-origin";
  return window.fetch(url, options);
};
