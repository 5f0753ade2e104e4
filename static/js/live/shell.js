/* The terminal: xterm.js (static/vendor/xterm) on ws/containers/<id>/shell/.
 *
 * Keys go out as binary frames, output comes back as binary frames (xterm decodes the
 * UTF-8 itself, across frame boundaries); the terminal fits the window and tells the
 * server its size. When the shell exits the session ends: no reconnect, a button
 * starts a new one.
 *
 * Flow control: the server sends at most a window (1 MiB) of output that is not
 * acknowledged. The page acknowledges the bytes xterm has finished writing (the
 * term.write callback), batched: at once past ACK_EVERY bytes, otherwise on the next
 * animation frame, so a flood costs a few acks per frame and never one per message.
 */
import { LiveSocket, statusText } from "./socket.js";

const ACK_EVERY = 64 * 1024;

export function startShell(root) {
  const indicator = root.querySelector("[data-live-status]");
  const choice = root.querySelector("[data-shell-choice]");
  const again = root.querySelector("[data-shell-again]");
  const term = new window.Terminal({
    cursorBlink: true,
    convertEol: false,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
    fontSize: 14,
    scrollback: 5000,
  });
  const fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(root.querySelector("[data-terminal]"));
  fit.fit();
  const encoder = new TextEncoder();
  let socket = null;

  const connect = () => {
    if (socket) socket.close();
    again.hidden = true;
    // Per socket: bytes xterm has written, bytes acknowledged, a pending frame callback.
    const flow = { written: 0, acked: 0, frame: 0 };
    const ack = (own) => {
      flow.frame = 0;
      if (own !== socket || flow.written === flow.acked) return;
      flow.acked = flow.written;
      own.send({ type: "ack", bytes: flow.acked });
    };
    const written = (own, count) => {
      flow.written += count;
      if (flow.written - flow.acked >= ACK_EVERY) ack(own);
      else if (!flow.frame) flow.frame = requestAnimationFrame(() => ack(own));
    };
    const own = new LiveSocket(root.dataset.wsPath, {
      reconnect: false,
      params: () => ({ shell: choice.value, cols: term.cols, rows: term.rows }),
      onBinary: (bytes) => term.write(bytes, () => written(own, bytes.length)),
      onMessage: (msg) => {
        if (msg.type === "ready") {
          indicator.textContent = `Connected: ${msg.shell} in ${msg.container}`;
          root.dataset.ready = "1";
        } else if (msg.type === "exit") {
          term.write(`\r\n\x1b[2m[the shell exited with code ${msg.code}]\x1b[0m\r\n`);
        } else if (msg.type === "error") {
          term.write(`\r\n\x1b[31m${msg.message}\x1b[0m\r\n`);
        }
      },
      onStatus: (status, code, extra) => {
        if (status === "open") return;
        if (status === "closed") {
          root.dataset.ready = "";
          indicator.textContent = code === 1000 ? "Session ended" : statusText(status, code, extra);
          again.hidden = false;
        } else {
          indicator.textContent = statusText(status, code, extra);
        }
      },
    });
    socket = own;
    socket.connect();
    term.focus();
  };

  term.onData((data) => socket && socket.send(encoder.encode(data)));
  term.onBinary((data) => socket && socket.send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
  term.onResize(({ cols, rows }) => socket && socket.send({ type: "resize", cols, rows }));
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => fit.fit(), 100);
  });
  again.addEventListener("click", connect);
  choice.addEventListener("change", connect);
  window.addEventListener("pagehide", () => socket && socket.close());
  connect();
  return { term, get socket() { return socket; } };
}

const root = document.querySelector("[data-shell]");
if (root) window.berthShell = startShell(root);
