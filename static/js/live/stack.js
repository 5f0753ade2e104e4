/* The stack page, live: events over ws/stacks/<id>/events/ append to the activity
 * list, pull progress becomes a bar per image, and container/service/stack events
 * refresh the status partial (services, containers) through htmx: no reload; the
 * refresh also swaps the header's line (revision, state) out of band, so both agree.
 *
 * Catch-up: the page starts from the newest event id it rendered; every reconnect
 * asks for `after=<last id seen>`, and ids already shown are dropped, so an event is
 * never shown twice nor lost across a dropped connection.
 */
import { LiveSocket, statusText } from "./socket.js";
import { StatsPanel } from "./stats.js";

const REFRESHING = /^(stack|container|service|image|revision)\./;

export function startStackPage(root) {
  const stackId = root.dataset.stackId;
  const statusUrl = root.dataset.statusUrl;
  const activity = root.querySelector("[data-live-activity]");
  const progress = root.querySelector("[data-live-progress]");
  const indicator = root.querySelector("[data-live-status]");
  const seen = new Set([...activity.children].map((li) => Number(li.dataset.eventId)));
  let lastId = Number(root.dataset.lastEventId || 0);
  let refreshTimer = null;
  let gone = false; // the stack was removed while the page was open

  // Re-render the status part, but never under the user's hands: while a field in it
  // has the focus, was edited a moment ago, or one of its forms is being sent, wait.
  // The check is made again when the answer arrives (a refresh sent before the user
  // typed must not land on top of the typing), and a value typed but not yet sent is
  // carried over into the new part.
  const refresh = (delay = 250) => {
    if (gone) return;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      const status = document.getElementById("stack-status");
      if (!status || !window.htmx) return;
      if (userIsActing(status)) {
        refresh(1000);
        return;
      }
      window.htmx.ajax("GET", statusUrl, { source: root, target: "#stack-status", swap: "outerHTML" });
    }, delay);
  };
  let carried = [];
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.requestConfig?.elt !== root) return; // only our refreshes
    const status = document.getElementById("stack-status");
    if (!status) return;
    if (userIsActing(status)) {
      event.detail.shouldSwap = false;
      refresh(1000);
      return;
    }
    carried = editedFields(status);
  });
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.requestConfig?.elt !== root || !carried.length) return;
    restoreFields(document.getElementById("stack-status"), carried);
    carried = [];
  });
  let opened = false;

  // Polling, the page's own: every 3 s while the stack is busy, whichever tab or API
  // call started the operation (an event over the socket, or the slow idle poll when the
  // socket is down, reveals it), and never under the user's hands (refresh() waits).
  // When the stack is not busy, operation messages read "Done" and go.
  let pollTimer = null;
  let pollDelay = 0;
  const schedulePoll = () => {
    const status = document.getElementById("stack-status");
    const busy = status?.dataset.busy === "true";
    if (!busy) window.Berth?.operationsDone(stackId, status?.dataset.state);
    const delay = busy ? 3000 : (window.berthLive ? 0 : 15000);
    if (pollTimer && pollDelay <= delay) return; // a poll as soon or sooner is due
    clearTimeout(pollTimer);
    pollTimer = null;
    pollDelay = delay;
    if (!delay) return;
    pollTimer = setTimeout(() => { pollTimer = null; refresh(0); }, delay);
  };
  // After any request that replaced the status part: ours, or a form of it (scale).
  // A 404 means the stack is gone (removed from another tab or the API): say so once
  // and stop asking, instead of an error toast at every poll.
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const ours = event.detail.requestConfig?.elt === root || event.detail.target?.id === "stack-status";
    if (!ours) return;
    if (event.detail.xhr?.status === 404) {
      stackGone();
      return;
    }
    if (!gone) setTimeout(schedulePoll, 50); // after the swap
  });
  document.body.addEventListener("htmx:responseError", (event) => {
    const ours = event.detail.requestConfig?.elt === root || event.detail.target?.id === "stack-status";
    if (ours && event.detail.xhr?.status === 404) event.stopImmediatePropagation();
  }, true);
  const stackGone = () => {
    if (gone) return;
    gone = true;
    clearTimeout(pollTimer);
    clearTimeout(refreshTimer);
    socket.close?.();
    const status = document.getElementById("stack-status");
    if (!status) return;
    const note = document.createElement("div");
    note.className = "alert alert-error";
    note.setAttribute("role", "alert");
    note.dataset.stackGone = "";
    note.innerHTML = '<div><strong>This stack is gone</strong><p>It was removed. <a href="/stacks/">Back to the stacks</a></p></div>';
    status.replaceChildren(note);
  };

  const showEvent = (event) => {
    if (seen.has(event.id)) return;
    seen.add(event.id);
    lastId = Math.max(lastId, event.id);
    root.dataset.lastEventId = String(lastId);
    activity.prepend(eventRow(event));
    while (activity.childElementCount > 200) activity.lastElementChild.remove();
    if (REFRESHING.test(event.action)) refresh();
  };

  const socket = new LiveSocket(`/ws/stacks/${stackId}/events/`, {
    params: () => ({ after: lastId }),
    onMessage: (msg) => {
      if (msg.type === "event") showEvent(msg.event);
      else if (msg.type === "progress") showProgress(progress, msg);
      else if (msg.type === "caught_up") { lastId = Math.max(lastId, msg.last_id || 0); }
    },
    onStatus: (state, code, extra) => {
      window.berthLive = state === "open";
      indicator.textContent = statusText(state, code, extra);
      indicator.dataset.state = state;
      if (state === "open" && opened) refresh(); // whatever changed while we were away
      if (state === "open") opened = true;
      else schedulePoll(); // no events while away: the slow poll watches meanwhile
    },
  });
  socket.connect();

  const stats = new StatsPanel(root.querySelector("[data-stats-panel]"));
  const sync = () => stats.sync(document.querySelectorAll("#stack-status [data-container-id]"));
  document.body.addEventListener("htmx:afterSettle", sync);
  sync();
  schedulePoll();
  return { socket, stats, refresh };
}

let lastEdit = 0;
document.addEventListener("input", () => { lastEdit = performance.now(); }, true);

/** The user is typing in, has just edited, or is submitting a form of the status part. */
function userIsActing(status) {
  const focused = status.contains(document.activeElement) &&
    document.activeElement.matches("input, select, textarea");
  const justEdited = performance.now() - lastEdit < 3000 && editedFields(status).length > 0;
  return focused || justEdited || status.querySelector(".htmx-request") !== null;
}

/** Fields whose value differs from what the server rendered, keyed by form and name. */
function editedFields(status) {
  return [...status.querySelectorAll("form")].flatMap((form) =>
    [...form.querySelectorAll("input:not([type=hidden]):not([type=checkbox]):not([type=radio]), textarea")]
      .filter((field) => field.value !== field.defaultValue)
      .map((field) => ({ action: form.getAttribute("action"), name: field.name, value: field.value })));
}

function restoreFields(status, fields) {
  if (!status) return;
  for (const { action, name, value } of fields) {
    const form = [...status.querySelectorAll("form")].find((f) => f.getAttribute("action") === action);
    const field = form && form.elements.namedItem(name);
    if (field && "value" in field) field.value = value;
  }
}

function eventRow(event) {
  const li = document.createElement("li");
  li.className = `live-event ev-${event.outcome}`;
  li.dataset.eventId = event.id;
  const time = window.Berth ? window.Berth.when(event.created_at) : document.createElement("time");
  const action = document.createElement("code");
  action.textContent = event.action;
  const message = document.createElement("span");
  message.textContent = ` ${event.message}${event.actor ? " · " + event.actor : ""}`;
  li.append(time, " ", action, message);
  return li;
}

function showProgress(box, msg) {
  box.hidden = false;
  let row = [...box.querySelectorAll("[data-image]")].find((el) => el.dataset.image === msg.image);
  if (!row) {
    row = document.createElement("div");
    row.className = "pull-row";
    row.dataset.image = msg.image;
    const label = document.createElement("span");
    label.className = "mono";
    label.textContent = msg.image;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.setAttribute("aria-label", `Pulling ${msg.image}`);
    const note = document.createElement("small");
    note.className = "muted";
    row.append(label, bar, note);
    box.append(row);
  }
  const percent = msg.image_percent ?? msg.percent ?? 0;
  row.querySelector("progress").value = percent;
  row.querySelector("small").textContent =
    msg.status === "done" ? "pulled" : `${msg.status || ""} ${percent.toFixed(0)}%`;
  if (msg.status === "done") {
    // A finished pull leaves the page a moment later; the box goes with its last row.
    setTimeout(() => {
      row.remove();
      if (!box.querySelector("[data-image]")) box.hidden = true;
    }, 3000);
  }
}

const root = document.querySelector("[data-live-stack]");
if (root) window.berthStack = startStackPage(root);

/* The status part's own polling (hx-trigger, the fallback without this script) is
   skipped: this script polls while busy and events trigger the other refreshes. */
document.body.addEventListener("htmx:beforeRequest", (event) => {
  if (window.berthStack && event.detail.elt && event.detail.elt.id === "stack-status") {
    event.preventDefault();
  }
});

/* The scale form posts through htmx and swaps in the redirected page's status part;
   the page's flash messages from that answer become toasts. */
document.body.addEventListener("htmx:beforeSwap", (event) => { // the form is swapped out next
  const elt = event.detail.requestConfig && event.detail.requestConfig.elt;
  if (!elt || !elt.matches || !elt.matches("[data-scale-form]")) return;
  const doc = new DOMParser().parseFromString(event.detail.xhr.responseText || "", "text/html");
  doc.querySelectorAll(".flashes .flash").forEach((flash) => {
    const kind = (flash.className.match(/flash-(\w+)/) || [])[1] || "info";
    toast(flash.textContent.trim(), kind, {
      operation: flash.hasAttribute("data-operation"), stackId: flash.dataset.stackId,
    });
  });
});

document.body.addEventListener("berth-toast", (event) => toast(event.detail.text, event.detail.kind));

/** A toast through berth.js (close button; success goes by itself, errors stay, an
 *  operation's message stays until the operation is done). */
function toast(text, kind, options) {
  window.Berth.toast(text, kind || "success", options);
}
