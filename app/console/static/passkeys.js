// Passkeys: the browser side of WebAuthn registration and sign-in (navigator.credentials).
(function () {
  "use strict";

  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function post(url, body) {
    return window.tidingsFetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().then(function (data) {
        if (!r.ok) { throw new Error(typeof data.detail === "string" ? data.detail : "refused"); }
        return data;
      });
    });
  }

  function say(text) {
    var status = document.getElementById("passkey-status");
    if (status) { status.textContent = text; }
  }

  function credentialJSON(cred) {
    var response = {};
    ["clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle"]
      .forEach(function (name) {
        if (cred.response[name]) { response[name] = toB64url(cred.response[name]); }
      });
    if (cred.response.getTransports) { response.transports = cred.response.getTransports(); }
    return {
      id: cred.id, rawId: toB64url(cred.rawId), type: cred.type, response: response,
      clientExtensionResults: cred.getClientExtensionResults()
    };
  }

  function register() {
    var nameField = document.getElementById("passkey-name");
    say("Follow your browser's prompt…");
    post("/admin/account/passkeys/options").then(function (options) {
      options.challenge = toBytes(options.challenge);
      options.user.id = toBytes(options.user.id);
      (options.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
      return navigator.credentials.create({ publicKey: options });
    }).then(function (cred) {
      return post("/admin/account/passkeys", {
        credential: credentialJSON(cred), name: nameField ? nameField.value : ""
      });
    }).then(function () {
      say("Passkey added.");
      window.location.reload();
    }).catch(function (err) { say("No passkey was added: " + err.message); });
  }

  function signIn() {
    var box = document.getElementById("passkey-login");
    say("Follow your browser's prompt…");
    post("/admin/login/passkey/options").then(function (options) {
      options.challenge = toBytes(options.challenge);
      (options.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
      return navigator.credentials.get({ publicKey: options });
    }).then(function (cred) {
      return post("/admin/login/passkey", {
        credential: credentialJSON(cred), next: box.getAttribute("data-next") || "/admin"
      });
    }).then(function (data) {
      window.location.assign(data.next);
    }).catch(function (err) { say("The passkey did not work: " + err.message); });
  }

  var reg = document.getElementById("passkey-register-button");
  if (reg) { reg.addEventListener("click", register); }
  var login = document.getElementById("passkey-login-button");
  if (login) { login.addEventListener("click", signIn); }
})();
