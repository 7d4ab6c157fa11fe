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
  });
});
