/* The log viewer: ws/containers/<id>/logs/ or ws/services/<id>/logs/.
 *
 * Follow on/off, last N lines and "since" reconnect with new parameters; timestamps
 * on/off and the search box only change what is shown. Pause stops acknowledging
 * batches, so the server's bounded buffer fills and it reports the lines it dropped
 * (shown as a notice) instead of growing. The page keeps at most MAX_LINES lines.
 * After a dropped connection it reconnects from the last timestamp it showed and skips
 * lines it already has.
 */
import { LiveSocket, statusText } from "./socket.js";

const MAX_LINES = 5000;

export function startLogViewer(root) {
  const form = root.querySelector("[data-log-controls]");
  const output = root.querySelector("[data-log-output]");
  const notice = root.querySelector("[data-log-dropped]");
  const indicator = root.querySelector("[data-live-status]");
  const pauseButton = root.querySelector("[data-log-pause]");
  const counter = root.querySelector("[data-log-count]");
  const state = { paused: false, held: [], dropped: 0, lastTs: "", resumeFrom: "", lines: 0 };

  const field = (name) => form.elements[name];
  const query = () => field("search").value.trim().toLowerCase();

  const params = () => {
    const since = state.resumeFrom || (field("since").value ? new Date(field("since").value).toISOString() : "");
    return {
      follow: field("follow").checked ? 1 : 0,
      tail: state.resumeFrom ? "all" : (field("tail").value || "100"),
      since,
      timestamps: 1, // always: the timestamps switch only hides them, and resume needs them
    };
  };

  const render = (batch) => {
    const fragment = document.createDocumentFragment();
    const q = query();
    for (const item of batch) {
      if (state.resumeFrom && item.ts && item.ts <= state.resumeFrom) continue; // have it
      if (item.ts) state.lastTs = item.ts;
      fragment.append(lineElement(item, q));
      state.lines++;
    }
    const atBottom = output.scrollHeight - output.scrollTop - output.clientHeight < 40;
    output.append(fragment);
    while (output.childElementCount > MAX_LINES) output.firstElementChild.remove();
    counter.textContent = `${state.lines} lines received`;
    if (atBottom || field("follow").checked) output.scrollTop = output.scrollHeight;
  };

  const socket = new LiveSocket(root.dataset.wsPath, {
    params,
    finalCodes: [1000, 4400, 4401, 4403, 4404],
    onMessage: (msg) => {
      if (msg.type === "logs") {
        if (state.paused) { state.held.push(msg); return; }
        render(msg.lines);
        socket.send({ type: "ack", seq: msg.seq });
      } else if (msg.type === "dropped") {
        state.dropped += msg.count;
        notice.hidden = false;
        notice.textContent = `${state.dropped} lines dropped: the log came faster than this page read it.`;
      } else if (msg.type === "end") {
        indicator.textContent = "End of log";
      } else if (msg.type === "error") {
        indicator.textContent = msg.message;
      }
    },
    onStatus: (status, code, extra) => {
      indicator.dataset.state = status;
      if (status === "waiting") state.resumeFrom = state.lastTs; // pick up after the last line
      if (status !== "closed" || !indicator.textContent.startsWith("End")) {
        indicator.textContent = statusText(status, code, extra);
      }
    },
  });

  const restart = () => {
    output.replaceChildren();
    Object.assign(state, { held: [], dropped: 0, lastTs: "", resumeFrom: "", lines: 0 });
    notice.hidden = true;
    setPaused(false);
    socket.restart();
  };

  const setPaused = (paused) => {
    state.paused = paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", paused ? "true" : "false");
    if (!paused) {
      const held = state.held;
      state.held = [];
      for (const msg of held) { render(msg.lines); socket.send({ type: "ack", seq: msg.seq }); }
    }
  };

  form.addEventListener("submit", (event) => { event.preventDefault(); restart(); });
  for (const name of ["follow", "tail", "since"]) field(name).addEventListener("change", restart);
  field("timestamps").addEventListener("change", () => {
    output.classList.toggle("hide-ts", !field("timestamps").checked);
  });
  field("search").addEventListener("input", () => {
    const q = query();
    for (const el of output.children) el.hidden = Boolean(q) && !el.dataset.text.includes(q);
  });
  pauseButton.addEventListener("click", () => setPaused(!state.paused));
  root.querySelector("[data-log-clear]").addEventListener("click", () => output.replaceChildren());
  output.classList.toggle("hide-ts", !field("timestamps").checked);
  socket.connect();
  return socket;
}

function lineElement(item, q) {
  const div = document.createElement("div");
  div.className = `log-line log-${item.stream}`;
  const text = item.line;
  div.dataset.text = ((item.container || "") + " " + text).toLowerCase();
  if (item.ts) {
    const ts = document.createElement("span");
    ts.className = "log-ts";
    ts.textContent = item.ts.replace("T", " ").replace(/(\.\d{3})\d*Z$/, "$1Z") + " ";
    // The engine's UTC stamp stays as printed; hovering reads it in the user's zone.
    const at = new Date(item.ts.replace(/(\.\d{3})\d*Z$/, "$1Z"));
    if (window.Berth && !isNaN(at.getTime())) ts.title = window.Berth.absoluteText(at);
    div.append(ts);
  }
  if (item.container) {
    const who = document.createElement("span");
    who.className = "log-container";
    who.textContent = item.container + " | ";
    div.append(who);
  }
  // Stream "engine": the manager's own words about the log (a node that is down), not
  // a line the container printed.
  div.append(item.stream === "engine" ? `[engine] ${text}` : text);
  if (q && !div.dataset.text.includes(q)) div.hidden = true;
  return div;
}

const root = document.querySelector("[data-log-viewer]");
if (root) window.berthLogs = startLogViewer(root);
