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

// Test Server, Test email and Auto-detect run in place: the page, and the password typed into it, stay as they are.
function inlineActions(form) {
  form.addEventListener("submit", async (event) => {
    const button = event.submitter;
    const target = button && document.getElementById(button.dataset.inline || "");
    if (!target) return;
    event.preventDefault();
    const buttons = form.querySelectorAll("[data-inline]");
    buttons.forEach((b) => { b.disabled = true; });
    target.setAttribute("aria-busy", "true");
    // The words come from the page (data-working, data-failed-*), in the reader's language.
    const texts = document.getElementById("inline-texts").dataset;
    target.innerHTML = '<p class="progress"><span class="spinner" aria-hidden="true"></span></p>';
    target.querySelector(".progress").append(texts.working);
    try {
      const response = await fetch(button.formAction, {
        method: "POST",
        body: new FormData(form, button),
        headers: { "X-Requested-With": "fetch" },
        credentials: "same-origin",
      });
      target.innerHTML = await response.text();
      applyDetected(form, target.querySelector("[data-detected]"));
    } catch (error) {
      target.innerHTML = '<div class="verdict verdict-fail"><h3></h3><p></p></div>';
      target.querySelector("h3").textContent = texts.failedTitle;
      target.querySelector("p").textContent = texts.failedText;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      target.removeAttribute("aria-busy");
    }
  });
}

// Fields are named "<prefix>-<name>": match the dash too, or "port" would also find "transport".
function setField(form, name, value) {
  const field = form.querySelector(`[name$='-${name}']`);
  if (field) field.value = value;
}

function applyDetected(form, found) {
  if (!found) return;
  setField(form, "host", found.dataset.host);
  setField(form, "transport", found.dataset.transport);
  setField(form, "port", found.dataset.port);
}

// A known provider fills the server fields at once and shows its caveat.
function presets(form) {
  const chooser = document.getElementById("id_preset");
  const caveat = document.getElementById("preset-caveat");
  if (!chooser) return;
  document.querySelectorAll(".no-js-only").forEach((element) => { element.hidden = true; });
  chooser.addEventListener("change", () => {
    const option = chooser.selectedOptions[0];
    if (!option || !option.value) return;
    setField(form, "host", option.dataset.host);
    setField(form, "transport", option.dataset.transport);
    setField(form, "port", option.dataset.port);
    caveat.textContent = `${option.textContent}: ${option.dataset.caveat}`;
  });
}

// A Copy button beside a read-only field (the OAuth redirect URL); the words come from the page, in the reader's
// language, and the result is announced to screen readers through a status region.
function copyButtons() {
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    const field = document.getElementById(button.dataset.copy);
    const status = document.getElementById(button.dataset.status);
    if (!field || !status) return;
    button.hidden = false;
    button.addEventListener("click", async () => {
      status.textContent = "";
      try {
        await navigator.clipboard.writeText(field.value);
        status.textContent = button.dataset.copied;
      } catch (error) {
        // No clipboard access (an insecure origin, or permission refused): select the text for Ctrl+C instead.
        field.focus();
        field.select();
        status.textContent = button.dataset.select;
      }
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  copyButtons();
  document.querySelectorAll("form.smtp-form").forEach((form) => {
    proposePorts(form);
    toggleOwnServer(form);
    inlineActions(form);
    presets(form);
  });
});
