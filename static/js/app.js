// Enhancements only: every page works without this file.
"use strict";

// Choosing a transport proposes its usual port, unless the admin typed a port of their own.
function proposePorts(form) {
  const transport = form.querySelector("select[name$='transport']");
  const port = form.querySelector("input[name$='port']");
  if (!transport || !port) return;
  const usual = { none: "25", ssl: "465", tls: "587" };
  let typed = port.value !== "" && !Object.values(usual).includes(port.value);
  port.addEventListener("input", () => { typed = port.value !== ""; });
  transport.addEventListener("change", () => {
    if (!typed) port.value = usual[transport.value] || "";
  });
}

// On a district, the own-server fields matter only when "own server" is chosen.
function toggleOwnServer(form) {
  const own = form.querySelector("#own-server");
  const radios = form.querySelectorAll("input[name='mail_source']");
  if (!own || radios.length < 2) return;
  const update = () => {
    const choice = form.querySelector("input[name='mail_source']:checked");
    own.hidden = !choice || choice.value !== "own";
  };
  radios.forEach((radio) => radio.addEventListener("change", update));
  update();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form.smtp-form").forEach((form) => {
    proposePorts(form);
    toggleOwnServer(form);
    inlineTests(form);
  });
});

// Test Server / Test email run in place: the page, and the password typed into it, stay as they are.
function inlineTests(form) {
  const result = form.querySelector("#test-result");
  if (!result) return;
  form.addEventListener("submit", async (event) => {
    const button = event.submitter;
    if (!button || !button.hasAttribute("data-inline-test")) return;
    event.preventDefault();
    const buttons = form.querySelectorAll("[data-inline-test]");
    buttons.forEach((b) => { b.disabled = true; });
    result.setAttribute("aria-busy", "true");
    result.innerHTML = '<p class="progress"><span class="spinner" aria-hidden="true"></span>Testing ' +
      "— this can take up to 30 seconds…</p>";
    try {
      const response = await fetch(button.formAction, {
        method: "POST",
        body: new FormData(form, button),
        headers: { "X-Requested-With": "fetch" },
        credentials: "same-origin",
      });
      result.innerHTML = await response.text();
    } catch (error) {
      result.innerHTML = '<div class="verdict verdict-fail"><h3>The test could not run</h3>' +
        "<p>The connection to Destiny Mail failed. Check your network and try again.</p></div>";
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      result.removeAttribute("aria-busy");
    }
  });
}
