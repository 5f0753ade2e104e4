/* Berth's few behaviours on top of htmx: the phone menu, dismissible messages,
   copy buttons, closing the user menu, and a visible message when an htmx request
   is refused (htmx does not swap 4xx/5xx answers by itself). No build step. */
(function () {
  "use strict";

  function setNav(open) {
    document.body.classList.toggle("nav-open", open);
    var toggle = document.querySelector("[data-nav-toggle]");
    if (toggle) toggle.setAttribute("aria-expanded", open ? "true" : "false");
    var backdrop = document.querySelector("[data-nav-close]");
    if (backdrop) backdrop.hidden = !open;
  }

  function copyText(button) {
    var target = document.querySelector(button.getAttribute("data-copy"));
    if (!target) return;
    var label = button.querySelector("[data-copy-label]") || button;
    var done = function () {
      var before = label.textContent;
      label.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(function () { label.textContent = before; button.classList.remove("copied"); }, 1800);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(target.value).then(done, function () { legacyCopy(target, done); });
    } else {
      legacyCopy(target, done);
    }
  }

  function legacyCopy(input, done) {
    input.focus();
    input.select();
    try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
  }

  function toast(text, kind) {
    var area = document.querySelector(".toast-area");
    if (!area) {
      area = document.createElement("div");
      area.className = "toast-area";
      area.setAttribute("aria-live", "assertive");
      document.body.appendChild(area);
    }
    var flash = document.createElement("div");
    flash.className = "flash flash-" + (kind || "error");
    flash.setAttribute("role", "alert");
    var span = document.createElement("span");
    span.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "flash-close";
    close.setAttribute("data-dismiss", "");
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    flash.appendChild(span);
    flash.appendChild(close);
    area.appendChild(flash);
    setTimeout(function () { flash.remove(); }, 8000);
  }

  function refusalText(xhr) {
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var msg = doc.querySelector(".error-page p:not(.error-code), .alert, .field-error");
    if (msg && msg.textContent.trim()) return msg.textContent.trim();
    if (xhr.status === 403) return "You are not allowed to do that.";
    if (xhr.status === 404) return "That no longer exists.";
    return "The request failed (" + xhr.status + "). Try again.";
  }

  document.addEventListener("click", function (event) {
    var el = event.target.closest("[data-nav-toggle], [data-nav-close], [data-dismiss], [data-copy]");
    if (el) {
      if (el.hasAttribute("data-nav-toggle")) setNav(!document.body.classList.contains("nav-open"));
      else if (el.hasAttribute("data-nav-close")) setNav(false);
      else if (el.hasAttribute("data-dismiss")) el.closest(".flash, .banner").remove();
      else if (el.hasAttribute("data-copy")) copyText(el);
    }
    document.querySelectorAll("details.dropdown[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });

  document.addEventListener("focusin", function (event) {
    if (event.target.matches("[data-select-on-focus]")) event.target.select();
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    setNav(false);
    document.querySelectorAll("details.dropdown[open]").forEach(function (m) { m.removeAttribute("open"); });
  });

  document.addEventListener("htmx:responseError", function (event) {
    toast(refusalText(event.detail.xhr), "error");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Berth did not answer. Check your connection and try again.", "error");
  });
})();
