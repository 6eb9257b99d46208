// The issue editor's enhancements: checks while typing, autosave with a version check, a
// live preview in sandboxed iframes (srcdoc: no scripts, no same-origin), the text part,
// and images inserted from the library or uploaded. The form works without this file.
(function () {
  "use strict";
  var form = document.getElementById("issue-form");
  if (!form) { return; }
  var issueId = form.getAttribute("data-issue");
  var body = document.getElementById("f-body");
  var problems = document.getElementById("problems");
  var saveState = document.getElementById("save-state");
  var version = document.getElementById("f-version");
  var timer = null;
  var conflict = false;

  function say(node, text) { if (node) { node.textContent = text; } }

  function showProblems(list) {
    problems.textContent = "";
    (list || []).forEach(function (p) {
      var line = document.createElement("p");
      line.className = "field-error";
      line.textContent = (p.field === "body" && p.line ? "Body, line " + p.line + ": " : "") + p.message;
      problems.appendChild(line);
    });
    body.setAttribute("aria-invalid", list && list.length ? "true" : "false");
  }

  function check() {
    return window.tidingsFetch("/admin/issues/check", { method: "POST", body: new FormData(form) })
      .then(function (r) { return r.json(); })
      .then(function (data) { showProblems(data.problems); return !data.problems.length; });
  }

  // One save at a time: a second one sent before the first answers would carry the old
  // version and clash with our own save; it waits and goes with the newest text instead.
  var saving = false, again = false;
  function autosave() {
    if (!issueId || conflict) { return; }
    if (saving) { again = true; return; }
    saving = true;
    say(saveState, "Saving…");
    window.tidingsFetch("/admin/issues/" + issueId + "/autosave", { method: "POST", body: new FormData(form) })
      .then(function (r) { return r.json().then(function (data) { return { status: r.status, data: data }; }); })
      .then(function (answer) {
        if (answer.status === 200) {
          showProblems([]);  // it compiled: the problems of an earlier attempt are gone
          version.value = answer.data.version;
          say(saveState, "Saved at " + new Date().toLocaleTimeString());
          refreshPreview();
        } else if (answer.status === 409) {
          conflict = true;
          say(saveState, answer.data.detail);
          saveState.className = "error";
        } else if (answer.status === 422) {
          showProblems(answer.data.problems);
          say(saveState, "Not saved: see the problems above.");
        } else {
          say(saveState, "Not saved: " + (answer.data.detail || answer.status));
        }
      })
      .catch(function () { say(saveState, "Not saved: the server did not answer."); })
      .then(function () {
        saving = false;
        if (again) { again = false; autosave(); }
      });
  }

  function changed() {
    clearTimeout(timer);
    // A saved issue goes straight to autosave, which runs the same check and answers 422
    // with the located problems: one compile per pause in typing, not two.
    timer = setTimeout(function () {
      if (issueId && !conflict) { autosave(); } else { check(); }
    }, 700);
  }
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);

  // The preview: the saved issue, as compiled for sending.
  var controls = document.getElementById("preview-controls");
  var report = document.getElementById("preview-report");
  var warnings = document.getElementById("preview-warnings");
  var textPart = document.getElementById("text-part");
  function previewQuery() {
    var sample = document.getElementById("p-sample").value;
    var subscriber = document.getElementById("p-subscriber").value.trim();
    return "?sample=" + encodeURIComponent(sample) +
      (/^[0-9]+$/.test(subscriber) ? "&subscriber_id=" + subscriber : "");
  }
  function refreshPreview() {
    if (!issueId) { return; }
    window.tidingsFetch("/admin/issues/" + issueId + "/preview.json" + previewQuery())
      .then(function (r) { return r.json().then(function (d) { return { ok: r.ok, data: d }; }); })
      .then(function (answer) {
        if (!answer.ok) { say(report, "No preview: " + JSON.stringify(answer.data.detail)); return; }
        var d = answer.data;
        // A fresh sandboxed frame each time: re-pointing a frame that is still loading its
        // src can leave it blank in Chromium.
        ["frame-phone", "frame-desktop"].forEach(function (id) {
          var old = document.getElementById(id);
          var frame = document.createElement("iframe");
          ["id", "class", "title", "width", "height"].forEach(function (name) {
            frame.setAttribute(name, old.getAttribute(name));
          });
          frame.setAttribute("sandbox", "");
          frame.setAttribute("srcdoc", d.html);
          old.replaceWith(frame);
        });
        say(report, "Subject: " + d.subject + " · HTML " + (d.bytes / 1024).toFixed(1) +
          " KB of Gmail's " + (d.clip_bytes / 1024) + " KB clip");
        warnings.textContent = "";
        d.warnings.forEach(function (w) {
          var li = document.createElement("li");
          li.className = "warning";
          li.textContent = w;
          warnings.appendChild(li);
        });
        textPart.textContent = d.text;
      });
  }
  if (controls) {
    controls.addEventListener("change", refreshPreview);
    controls.addEventListener("submit", function (e) { e.preventDefault(); refreshPreview(); });
    var textLink = document.getElementById("text-link");
    textLink.addEventListener("click", function (e) {
      e.preventDefault();
      textPart.hidden = !textPart.hidden;
      textLink.textContent = textPart.hidden ? "The plain-text part" : "Hide the plain-text part";
    });
    refreshPreview();
  }

  // Images: insert at the cursor, with width, height and the alt text typed.
  function escapeAttr(s) {
    return String(s).replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
  }
  function insertImage(url, width, height) {
    var alt = document.getElementById("img-alt").value.trim();
    var tag = '<img src="' + escapeAttr(url) + '" width="' + width + '" height="' + height +
      '" alt="' + escapeAttr(alt) + '">';
    var start = body.selectionStart, end = body.selectionEnd;
    body.value = body.value.slice(0, start) + "\n" + tag + "\n" + body.value.slice(end);
    body.focus();
    changed();
  }
  // The insert button posts the whole editor form without JavaScript (the server puts the
  // image at the end and saves); here it goes in at the cursor and autosave saves it.
  var insertButton = document.getElementById("insert-image");
  if (insertButton) {
    insertButton.addEventListener("click", function (e) {
      var chosen = document.querySelector("input[name='media_id']:checked");
      if (!chosen) { return; }
      e.preventDefault();
      insertImage(chosen.getAttribute("data-url"), chosen.getAttribute("data-width"),
        chosen.getAttribute("data-height"));
    });
  }
  var upload = document.getElementById("upload-form");
  if (upload) {
    upload.addEventListener("submit", function (e) {
      e.preventDefault();
      var state = document.getElementById("upload-state");
      say(state, "Uploading…");
      window.tidingsFetch("/admin/media", { method: "POST", body: new FormData(upload) })
        .then(function (r) { return r.json().then(function (d) { return { ok: r.ok, data: d }; }); })
        .then(function (answer) {
          if (!answer.ok) { say(state, "Not uploaded: " + answer.data.detail); return; }
          say(state, "Uploaded and inserted.");
          insertImage(answer.data.email_url, answer.data.email_width, answer.data.email_height);
        });
    });
  }
})();
