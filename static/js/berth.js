/* Berth's few behaviours on top of htmx: the phone menu, dismissible messages that
   go by themselves (operation messages when the operation ends), times written one way,
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

  /* ---- Times: one wording everywhere (mirrors apps/core/templatetags/berth_time.py).
     Server-rendered <time data-when> get the absolute title in the shown zone (the
     user's preference on <html data-tz>, else the browser's) and a relative text kept
     fresh every 30 s; Berth.when(iso) makes such an element for times drawn by scripts. */
  var STEPS = [[90, 0, "minute"], [2700, 60, "minute"], [5400, 0, "hour"], [79200, 3600, "hour"],
    [129600, 0, "day"], [2246400, 86400, "day"], [3888000, 0, "month"], [27648000, 2592000, "month"],
    [47347200, 0, "year"], [Infinity, 31536000, "year"]];

  function shownZone() {
    return document.documentElement.getAttribute("data-tz") || browserZone() || "UTC";
  }

  function browserZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  function relativeText(date, now) {
    var seconds = ((now || Date.now()) - date.getTime()) / 1000;
    var future = seconds < 0, span = Math.abs(seconds);
    if (span < 45) return future ? "in a few seconds" : "just now";
    var step = STEPS.find(function (s) { return span < s[0]; });
    var count = step[1] ? Math.floor(span / step[1] + 0.5) : 1;
    var text = count + " " + step[2] + (count === 1 ? "" : "s");
    return future ? "in " + text : text + " ago";
  }

  function absoluteText(date, zone) {
    zone = zone || shownZone();
    var parts = {};
    new Intl.DateTimeFormat("en-US", {
      timeZone: zone, day: "numeric", month: "short", year: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }).formatToParts(date).forEach(function (p) { parts[p.type] = p.value; });
    return parts.day + " " + parts.month + " " + parts.year + ", " + parts.hour + ":" +
      parts.minute + ":" + parts.second + " (" + zone + ")";
  }

  function refreshTime(el) {
    var date = new Date(el.getAttribute("datetime"));
    if (isNaN(date.getTime())) return;
    var relative = relativeText(date);
    if (el.textContent !== relative) el.textContent = relative;
    try { el.title = absoluteText(date); } catch (e) { /* unknown zone: keep the server's */ }
  }

  function refreshTimes(root) {
    (root || document).querySelectorAll("time[data-when]").forEach(refreshTime);
  }

  function when(value) {
    var el = document.createElement("time");
    el.setAttribute("datetime", new Date(value).toISOString());
    el.setAttribute("data-when", "");
    refreshTime(el);
    return el;
  }

  /* The server writes times in the browser's zone when the user chose none: tell it. */
  (function rememberBrowserZone() {
    var zone = browserZone();
    if (zone && document.cookie.indexOf("berth_tz=" + encodeURIComponent(zone)) === -1) {
      document.cookie = "berth_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    }
  })();

  /* ---- Messages: success and info go after a few seconds (a close button ends them
     sooner); errors and warnings stay until dismissed. A message about a stack's running
     operation (data-operation, on the stack page) stays until that operation is done,
     then reads "Done" and goes. */
  var HIDE_AFTER = 6000;

  function dismissLater(flash, delay, evenIfRead) {
    if (flash.hasAttribute("data-operation") || !flash.matches(".flash-success, .flash-info, .flash-done")) return;
    if (flash.dataset.hideTimer) return;
    flash.dataset.hideTimer = String(setTimeout(function () { fadeOut(flash, evenIfRead); }, delay || HIDE_AFTER));
  }

  function fadeOut(flash, evenIfRead) {
    if (!evenIfRead && flash.matches(":hover, :focus-within")) { // being read: wait
      setTimeout(function () { fadeOut(flash, false); }, 2000);
      return;
    }
    flash.classList.add("flash-leaving");
    setTimeout(function () { flash.remove(); }, 300);
  }

  /* The stack's operation ended: its banner says "Done" and goes, or, when the stack
     failed (or is degraded), says it did not go well and stays until dismissed. */
  function operationsDone(stackId, state) {
    var failed = state === "failed" || state === "degraded";
    document.querySelectorAll(".flash[data-operation]").forEach(function (flash) {
      if (stackId && flash.getAttribute("data-stack-id") !== String(stackId)) return;
      flash.removeAttribute("data-operation");
      var text = flash.querySelector("span") || flash;
      if (failed) {
        flash.classList.remove("flash-success", "flash-info");
        flash.classList.add("flash-error");
        var icon = flash.querySelector("svg:first-child");
        if (icon) icon.remove(); // the success tick would contradict the words
        text.textContent = "Finished with problems: " + text.textContent.trim() +
          " See the stack's state below.";
        return;
      }
      flash.classList.add("flash-done");
      text.textContent = "Done: " + text.textContent.trim();
      dismissLater(flash, 3000, true);
    });
  }

  function toast(text, kind, options) {
    var area = document.querySelector(".toast-area");
    if (!area) {
      area = document.createElement("div");
      area.className = "toast-area";
      area.setAttribute("aria-live", "assertive");
      document.body.appendChild(area);
    }
    // The same words already on screen (a poll refused again and again): say it once.
    var same = [].slice.call(area.querySelectorAll(".flash > span")).some(function (shown) {
      return shown.textContent === text;
    });
    if (same) return;
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
    if (options && options.operation) {
      flash.setAttribute("data-operation", "");
      flash.setAttribute("data-stack-id", String(options.stackId || ""));
    }
    area.appendChild(flash);
    dismissLater(flash);
    return flash;
  }

  window.Berth = {
    when: when, relativeText: relativeText, absoluteText: absoluteText, refreshTimes: refreshTimes,
    toast: toast, operationsDone: operationsDone, tidyTables: tidyTables,
  };

  function refusalText(xhr) {
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var msg = doc.querySelector(".error-page p:not(.error-code), .alert, .field-error");
    if (msg && msg.textContent.trim()) return msg.textContent.trim();
    if (xhr.status === 403) return "You are not allowed to do that.";
    if (xhr.status === 404) return "That no longer exists.";
    return "The request failed (" + xhr.status + "). Try again.";
  }

  /* A refused form keeps the person where the first problem is: the server lists every
     problem in a [data-error-summary] block and autofocuses the first field in error;
     here that field is also scrolled clear of the top bar (or the summary focused when
     no field is named), and the summary's links focus their field. */
  function focusField(field) {
    field.focus({ preventScroll: true });
    field.scrollIntoView({ block: "center" });
  }

  function showFirstError(root) {
    var summary = root.querySelector("[data-error-summary]");
    if (!summary) return;
    var scope = summary.closest("form") || summary.parentElement;
    var fields = scope.querySelectorAll("[aria-invalid='true']");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].offsetParent !== null) { focusField(fields[i]); return; }
    }
    summary.focus({ preventScroll: true });
    summary.scrollIntoView({ block: "center" });
  }

  function followErrorLink(link, event) {
    var field = document.getElementById(link.getAttribute("data-error-link"));
    if (!field) return;
    event.preventDefault();
    focusField(field);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { showFirstError(document); });
  } else {
    showFirstError(document);
  }
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail && event.detail.target) showFirstError(event.detail.target);
  });

  document.addEventListener("click", function (event) {
    var errorLink = event.target.closest("[data-error-link]");
    if (errorLink) followErrorLink(errorLink, event);
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

  /* The tenant switcher: a select switches on change; a search box when a choice is
     taken from its datalist (typing a name that happens to match waits for Enter). */
  document.addEventListener("change", function (event) {
    var select = event.target.closest("[data-switcher-select]");
    if (select) select.form.requestSubmit();
  });
  document.addEventListener("input", function (event) {
    var box = event.target.closest("[data-switcher-search]");
    if (!box || (event.inputType && event.inputType !== "insertReplacementText")) return;
    var options = box.list ? box.list.options : [];
    for (var i = 0; i < options.length; i++) {
      if (options[i].value === box.value && box.value !== box.defaultValue) {
        box.form.requestSubmit();
        return;
      }
    }
  });

  document.addEventListener("focusin", function (event) {
    if (event.target.matches("[data-select-on-focus]")) event.target.select();
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    setNav(false);
    document.querySelectorAll("details.dropdown[open]").forEach(function (m) { m.removeAttribute("open"); });
  });

  /* ---- Tables on narrow screens: cells of a table.responsive carry their column's name
     (the cards of berth.css show it), and a .table-wrap wider than its box is marked
     [data-scrolls] and focusable. */
  function labelCells() {
    document.querySelectorAll("table.responsive").forEach(function (table) {
      var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
        return th.textContent.trim();
      });
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        var column = 0;
        Array.prototype.forEach.call(tr.children, function (cell) {
          var span = cell.colSpan || 1;
          if (!cell.hasAttribute("data-label")) cell.setAttribute("data-label", span > 1 ? "" : heads[column] || "");
          column += span;
        });
      });
    });
  }

  function markScrolling() {
    document.querySelectorAll(".table-wrap").forEach(function (wrap) {
      var scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
      wrap.toggleAttribute("data-scrolls", scrolls);
      if (scrolls && !wrap.hasAttribute("tabindex")) wrap.setAttribute("tabindex", "0");
      else if (!scrolls && wrap.getAttribute("tabindex") === "0") wrap.removeAttribute("tabindex");
    });
  }

  var tablesTimer = null;
  function tidyTables() {
    clearTimeout(tablesTimer);
    tablesTimer = setTimeout(function () { labelCells(); markScrolling(); }, 30);
  }
  window.addEventListener("resize", tidyTables);

  function start() {
    labelCells();
    markScrolling();
    refreshTimes();
    document.querySelectorAll(".flash").forEach(function (flash) { dismissLater(flash); });
  }
  /* show_if (catalog questions, on the deploy and Edit forms): a field is shown only
     while every named answer of its form has one of the listed values. */
  function showIf(form) {
    function valueOf(name) {
      var input = form.elements[name];
      if (!input) return null;
      return input.type === "checkbox" ? input.checked : input.value;
    }
    form.querySelectorAll("[data-show-if]").forEach(function (input) {
      var rules = JSON.parse(input.dataset.showIf), shown = true;
      Object.keys(rules).forEach(function (name) {
        var value = valueOf(name);
        if (!rules[name].some(function (w) { return String(w) === String(value); })) shown = false;
      });
      (input.closest(".field") || input).hidden = !shown;
    });
  }
  function watchShowIf(root) {
    (root || document).querySelectorAll("form").forEach(function (form) {
      if (form.dataset.showIfWatched || !form.querySelector("[data-show-if]")) return;
      form.dataset.showIfWatched = "1";
      form.addEventListener("change", function () { showIf(form); });
      form.addEventListener("input", function () { showIf(form); });
      showIf(form);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { watchShowIf(); });
  document.addEventListener("htmx:load", function (event) { watchShowIf(event.target); });
  if (document.readyState !== "loading") watchShowIf();

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
  setInterval(function () { refreshTimes(); }, 30000);
  document.addEventListener("htmx:load", function (event) { refreshTimes(event.target); tidyTables(); });

  document.addEventListener("htmx:responseError", function (event) {
    toast(refusalText(event.detail.xhr), "error");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Berth did not answer. Check your connection and try again.", "error");
  });
})();
