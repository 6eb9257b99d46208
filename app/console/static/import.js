// Import with a live progress bar: the file is sent as the body of one request, which the
// server imports as it reads, so the upload's progress is the import's. Without this
// script the form posts as multipart and the server answers with the result page.
(function () {
  "use strict";
  var form = document.getElementById("import-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;
  var box = document.getElementById("import-progress");
  var bar = document.getElementById("import-bar");
  var status = document.getElementById("import-status");
  var result = document.getElementById("import-result");
  var lastSaid = -1;

  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function say(text) { status.textContent = text; }

  function showResult(data, fileName) {
    result.replaceChildren();
    result.appendChild(el("h2", "Import finished: " + fileName + " into " + data.list, { id: "import-result-h" }));
    var figures = el("ul", null, { "class": "figures" });
    var failed = data.errors.length + data.errors_omitted;
    [[data.created, "created"], [data.updated, "updated"], [data.skipped, "skipped"], [failed, "with errors"]]
      .forEach(function (pair) {
        var li = el("li");
        li.appendChild(el("strong", pair[0]));
        li.appendChild(document.createTextNode(" " + pair[1]));
        figures.appendChild(li);
      });
    result.appendChild(figures);
    if (data.errors.length) {
      var wrap = el("div", null, { "class": "table-wrap", role: "region", tabindex: "0", "aria-labelledby": "errors-caption" });
      var table = el("table", null, { "class": "data" });
      table.appendChild(el("caption", "Rows not imported, by line of the file", { id: "errors-caption" }));
      var head = el("thead"), row = el("tr");
      row.appendChild(el("th", "Line", { scope: "col", "class": "num" }));
      row.appendChild(el("th", "Why", { scope: "col" }));
      head.appendChild(row);
      table.appendChild(head);
      var body = el("tbody");
      data.errors.forEach(function (e) {
        var tr = el("tr");
        tr.appendChild(el("th", e.line, { scope: "row", "class": "num" }));
        tr.appendChild(el("td", e.error));
        body.appendChild(tr);
      });
      table.appendChild(body);
      wrap.appendChild(table);
      result.appendChild(wrap);
      if (data.errors_omitted) result.appendChild(el("p", "… and " + data.errors_omitted + " more rows with errors, not listed."));
    }
    var more = el("p");
    var link = el("a", "See the list's subscribers", { href: "/admin/subscribers?list=" + encodeURIComponent(data.list) });
    more.appendChild(link);
    result.appendChild(more);
    result.hidden = false;
    result.focus();
  }

  function problem(xhr) {
    try {
      var detail = JSON.parse(xhr.responseText).detail;
      if (Array.isArray(detail)) return detail.map(function (d) { return d.msg; }).join(" ");
      if (detail) return String(detail);
    } catch (e) { /* not JSON: fall through */ }
    return "The import failed (HTTP " + xhr.status + "); nothing more was imported.";
  }

  form.addEventListener("submit", function (event) {
    var file = form.elements.file.files[0];
    var list = form.elements.list.value;
    if (!file || !list) return; // let the browser's own validation speak
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    box.hidden = false;
    result.hidden = true;
    bar.value = 0;
    lastSaid = -1;
    say("Importing " + file.name + "…");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.streamUrl + "?list=" + encodeURIComponent(list));
    xhr.setRequestHeader("Content-Type", "text/csv");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", form.elements.csrf_token.value);
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      var percent = Math.floor((e.loaded / e.total) * 100);
      bar.value = percent;
      bar.textContent = percent + "%";
      // Screen readers hear every tenth, not every tick.
      if (Math.floor(percent / 10) !== lastSaid) {
        lastSaid = Math.floor(percent / 10);
        say(percent < 100 ? percent + "% of " + file.name + " read" : "Saving the last rows…");
      }
    });
    xhr.addEventListener("load", function () {
      button.disabled = false;
      if (xhr.status === 200) {
        bar.value = 100;
        say("Done.");
        showResult(JSON.parse(xhr.responseText), file.name);
      } else {
        say(problem(xhr));
      }
    });
    xhr.addEventListener("error", function () {
      button.disabled = false;
      say("The connection broke off; rows read before it are imported. Import the file again to finish: it changes nothing twice.");
    });
    xhr.send(file);
  });
})();
