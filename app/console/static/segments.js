// The segment builder: a structured editor over the rule's JSON textarea, and a live count.
// The form works without this file; here the textarea stays the one source of truth:
// every change in the editor is written back to it, and the count follows it.
(function () {
  "use strict";
  var form = document.getElementById("segment-form");
  var area = document.getElementById("f-rules");
  var root = document.getElementById("segment-builder");
  var out = document.getElementById("segment-count");
  if (!form || !area || !root || !out || !window.tidingsFetch) { return; }

  var OPS = ["eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "exists"];
  var KINDS = {
    attribute: function () { return {attribute: "", op: "eq", value: ""}; },
    field: function () { return {field: "email", op: "contains", value: ""}; },
    list: function () { return {list: "", status: "confirmed"}; },
    bounced: function () { return {bounced: "any", within_days: 30}; },
    engaged: function () { return {engaged: "opened", issue: "any"}; }
  };
  var rule = null;
  var timer = null;
  var asked = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }

  function select(label, choices, value, onchange) {
    var s = el("select", {"aria-label": label});
    choices.forEach(function (c) {
      var o = el("option", {value: c, text: c});
      if (c === value) { o.selected = true; }
      s.appendChild(o);
    });
    s.addEventListener("change", function () { onchange(s.value); });
    return s;
  }

  function input(label, value, onchange, type) {
    var i = el("input", {"aria-label": label, type: type || "text"});
    i.value = value === undefined || value === null ? "" : String(value);
    i.addEventListener("input", function () { onchange(i.value); });
    return i;
  }

  // A control with its name shown above it: the aria-label (which names the condition
  // too, "Rule › 2: comparison") is what a screen reader says; `text` is what a reader
  // sees, a word of it, so the visible name is part of the spoken one (WCAG 2.5.3).
  function field(text, control) {
    return el("label", {"class": "seg-field"}, [el("span", {text: text}), control]);
  }

  function button(text, label, onclick, cls) {
    var b = el("button", {type: "button", "class": cls || "secondary", text: text});
    if (label) { b.setAttribute("aria-label", label); }
    b.addEventListener("click", onclick);
    return b;
  }

  function kindOf(node) {
    if ("all" in node) { return "all"; }
    if ("any" in node) { return "any"; }
    if ("not" in node) { return "not"; }
    return Object.keys(KINDS).filter(function (k) { return k in node; })[0] || "attribute";
  }

  function typed(text, type) {
    if (type === "number") { var n = Number(text); return text.trim() && !isNaN(n) ? n : text; }
    if (type === "boolean") { return text === "true"; }
    return text;
  }

  function typeOf(value) {
    var v = Array.isArray(value) ? value[0] : value;
    return typeof v === "number" ? "number" : typeof v === "boolean" ? "boolean" : "text";
  }

  function valueControls(node, name) {
    var parts = [];
    if (node.op === "exists") {
      parts.push(select(name + " is present", ["true", "false"], String(node.value !== false),
        function (v) { node.value = v === "true"; changed(); }));
      return parts;
    }
    var type = typeOf(node.value);
    var shown = Array.isArray(node.value) ? node.value.join(", ") : node.value;
    function set(text) {
      node.value = node.op === "in"
        ? text.split(",").map(function (t) { return typed(t.trim(), type); })
        : typed(text, type);
      changed();
    }
    var box = input(node.op === "in" ? name + " values, comma-separated" : name + " value",
      shown, set);
    parts.push(box);
    if ("attribute" in node) {
      parts.push(select(name + " value type", ["text", "number", "boolean"], type,
        function (t) { type = t; set(box.value); }));
    }
    return parts;
  }

  function conditionRow(node, label) {
    var kind = kindOf(node);
    var row = el("div", {"class": "seg-condition", role: "group", "aria-label": label});
    function add(text, control) { row.appendChild(field(text, control)); }
    add("Kind", select(label + ": kind", Object.keys(KINDS), kind, function (k) {
      replace(node, KINDS[k]());
    }));
    if (kind === "attribute") {
      add("Attribute name", input(label + ": attribute name", node.attribute,
        function (v) { node.attribute = v; changed(); }));
    }
    if (kind === "field") {
      add("Field", select(label + ": field", ["email", "name", "created_at"], node.field,
        function (v) { node.field = v; changed(); }));
    }
    if (kind === "attribute" || kind === "field") {
      add("Comparison", select(label + ": comparison", OPS, node.op, function (v) {
        node.op = v;
        if (v === "exists") { node.value = true; } else if (v === "in") { node.value = []; }
        render(); changed();
      }));
      var names = node.op === "exists" ? ["Is present"]
        : node.op === "in" ? ["Values, comma-separated", "Value type"] : ["Value", "Value type"];
      valueControls(node, label).forEach(function (c, i) { add(names[i], c); });
    }
    if (kind === "list") {
      add("List slug", input(label + ": list slug", node.list,
        function (v) { node.list = v; changed(); }));
      add("Status", select(label + ": status", ["confirmed", "pending", "unsubscribed"],
        node.status, function (v) { node.status = v; changed(); }));
    }
    if (kind === "bounced" || kind === "engaged") {
      var choices = kind === "bounced" ? ["hard", "soft", "any"] : ["opened", "clicked", "sent"];
      add(kind === "bounced" ? "Bounced" : "Engaged", select(label + ": " + kind, choices,
        node[kind], function (v) { node[kind] = v; changed(); }));
      if (kind === "engaged") {
        add("Issue id or any", input(label + ": issue id or any", node.issue, function (v) {
          node.issue = /^\d+$/.test(v) ? Number(v) : v; changed();
        }));
      }
      add("Within days (empty: ever)", input(label + ": within days (empty: ever)",
        node.within_days, function (v) {
          if (v === "") { delete node.within_days; } else { node.within_days = Number(v); }
          changed();
        }, "number"));
    }
    return row;
  }

  // Swap a node's content in place, so its parent keeps the same object.
  function replace(node, fresh) {
    Object.keys(node).forEach(function (k) { delete node[k]; });
    Object.assign(node, fresh);
    render(); changed();
  }

  function groupBox(node, label) {
    var kind = kindOf(node);
    var box = el("fieldset", {"class": "seg-group"});
    box.appendChild(el("legend", {text: label}));
    var combine = select(label + ": combine", ["all", "any", "not"], kind, function (k) {
      var members = kind === "not" ? [node.not] : node[kind];
      replace(node, k === "not" ? {not: members[0]} : (function () {
        var g = {}; g[k] = members; return g;
      })());
    });
    box.appendChild(field("Combine", combine));
    var members = kind === "not" ? [node.not] : node[kind];
    var list = el("div", {"class": "seg-members"});
    members.forEach(function (member, index) {
      var name = label + " › " + (index + 1);
      var item = el("div", {"class": "seg-member"});
      var isGroup = ["all", "any", "not"].indexOf(kindOf(member)) >= 0;
      item.appendChild(isGroup ? groupBox(member, name) : conditionRow(member, name));
      if (kind !== "not" && members.length > 1) {
        item.appendChild(button("Remove", "Remove " + name, function () {
          members.splice(index, 1); render(); changed();
        }, "danger"));
      }
      list.appendChild(item);
    });
    box.appendChild(list);
    if (kind !== "not") {
      box.appendChild(button("Add condition", "Add a condition to " + label, function () {
        members.push(KINDS.attribute()); render(); changed();
      }));
      box.appendChild(button("Add group", "Add a group to " + label, function () {
        members.push({any: [KINDS.attribute()]}); render(); changed();
      }));
    }
    return box;
  }

  function render() {
    root.textContent = "";
    if (rule === null) { return; }
    if (["all", "any", "not"].indexOf(kindOf(rule)) < 0) { rule = {all: [rule]}; }
    root.appendChild(groupBox(rule, "Rule"));
    root.hidden = false;
  }

  function changed() {
    area.value = JSON.stringify(rule, null, 2);
    schedule();
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(count, 350);
  }

  function count() {
    var ticket = ++asked;
    var parsed;
    try { parsed = JSON.parse(area.value); } catch (e) {
      out.textContent = "The rule is not JSON yet."; return;
    }
    out.textContent = "Counting…";
    window.tidingsFetch("/admin/segments/count", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({rules: parsed})
    }).then(function (r) {
      return r.json().then(function (body) { return {ok: r.ok, body: body}; });
    }).then(function (answer) {
      if (ticket !== asked) { return; }  // a later change has asked again
      if (answer.ok) {
        var n = answer.body.count;
        out.textContent = n + (n === 1 ? " person matches" : " people match") + " this rule now.";
        return;
      }
      var d = answer.body.detail;
      var first = Array.isArray(d) ? d[0] : {loc: [], msg: String(d)};
      var where = (first.loc || []).filter(function (p) { return p !== "body"; }).join(" › ");
      out.textContent = "Not counted: " + (where ? where + ": " : "") + first.msg;
    }).catch(function () {
      if (ticket === asked) { out.textContent = "Could not count just now."; }
    });
  }

  function load() {
    try { rule = JSON.parse(area.value); } catch (e) { rule = null; }
    if (rule === null || typeof rule !== "object" || Array.isArray(rule)) {
      rule = null; root.hidden = true;
    }
    render();
  }

  area.addEventListener("input", schedule);
  area.addEventListener("change", load);
  load();
  if (rule !== null && !out.textContent.trim()) { count(); }
})();
