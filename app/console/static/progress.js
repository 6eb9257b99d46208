// Live progress of a send: follows the issue's progress (server-sent events, polling as a
// fallback; one shared query per second on the server), updates the figures and the moves
// that make sense. Forms marked "once" send once however often they are clicked; the
// schedule form gets the browser's time zone.
(function () {
  "use strict";
  document.querySelectorAll("form.once").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sent")) { event.preventDefault(); return; }
      form.setAttribute("data-sent", "1");
      form.querySelectorAll("button").forEach(function (b) { b.setAttribute("aria-disabled", "true"); });
    });
  });
  var zone = document.querySelector("[data-fill-timezone]");
  if (zone && zone.value === "UTC" && window.Intl) {
    zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  }
  var board = document.getElementById("progress");
  if (!board) { return; }
  var issueId = board.getAttribute("data-issue");
  var live = { sending: true, scheduled: true, paused: true };

  function set(id, value) {
    var node = document.getElementById(id);
    if (node) { node.textContent = value; }
  }
  function show(p) {
    ["recipients", "sent", "failed", "bounced", "complained", "unsubscribed", "queued"]
      .forEach(function (k) { set("p-" + k, p[k]); });
    set("p-rate", p.rate);
    set("p-eta", p.eta_seconds ? p.eta_seconds + " s" : "–");
    set("p-status", p.status);
    set("p-reason", p.status_reason ? "(" + p.status_reason + ")" : "");
    var bar = document.getElementById("p-bar");
    bar.max = p.recipients || 1;
    bar.value = p.done;
    document.querySelectorAll("form.move").forEach(function (f) {
      f.hidden = f.getAttribute("data-when").split(" ").indexOf(p.status) < 0;
    });
    return live[p.status];
  }
  // Polling: where server-sent events are missing or keep failing.
  function tick() {
    window.tidingsFetch("/admin/issues/" + issueId + "/progress.json")
      .then(function (r) { return r.json(); })
      .then(function (p) { if (show(p)) { setTimeout(tick, 1000); } })
      .catch(function () { setTimeout(tick, 5000); });
  }
  // Server-sent events: one connection, the figures pushed once a second (the server
  // checks the session once, not every second). The stream ends when the send does, or
  // after a while, and the browser opens it again; after repeated errors, poll instead.
  function stream() {
    var source = new EventSource("/admin/issues/" + issueId + "/progress");
    var errors = 0;
    source.onmessage = function (event) {
      errors = 0;
      if (!show(JSON.parse(event.data))) { source.close(); }
    };
    source.onerror = function () {
      errors += 1;
      if (errors >= 3 || source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(tick, 1000);
      }
    };
  }
  if (live[board.getAttribute("data-status")]) {
    if (window.EventSource) { stream(); } else { setTimeout(tick, 1000); }
  }
})();
