/* A websocket that reconnects by itself, with backoff.
 *
 * `path` is a server path ("/ws/stacks/7/events/"); `params()` is called before every
 * (re)connect so a caller can resume where it stopped (e.g. `after=<last event id>`).
 * Close codes in `finalCodes` (refusals, a finished stream) end it for good; anything
 * else (Redis restarted, laptop asleep, server redeployed) retries after 0.5 s, 1 s,
 * 2 s ... up to 15 s, and at once when the browser comes back online or into view.
 * See apps/deployments/WEBSOCKETS.md for the routes and messages.
 */

export const REFUSED = [4400, 4401, 4403, 4404, 4405, 4408, 4409];

export function wsUrl(path, params) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const qs = query.toString();
  return `${scheme}//${location.host}${path}${qs ? "?" + qs : ""}`;
}

export class LiveSocket {
  constructor(path, options = {}) {
    this.path = path;
    this.params = options.params || (() => ({}));
    this.onMessage = options.onMessage || (() => {});
    this.onBinary = options.onBinary || (() => {});
    this.onOpen = options.onOpen || (() => {});
    this.onStatus = options.onStatus || (() => {});
    this.finalCodes = options.finalCodes || REFUSED;
    this.reconnect = options.reconnect !== false;
    this.minDelay = options.minDelay || 500;
    this.maxDelay = options.maxDelay || 15000;
    this.delay = this.minDelay;
    this.ws = null;
    this.timer = null;
    this.stopped = false;
    this.retryNow = () => { if (!this.ws && !this.stopped) this.connect(); };
    window.addEventListener("online", this.retryNow);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.retryNow();
    });
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped) return;
    this.onStatus("connecting");
    const ws = new WebSocket(wsUrl(this.path, this.params()));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => { this.onStatus("open"); this.onOpen(ws); };
    ws.onmessage = (msg) => {
      this.delay = this.minDelay; // a live connection resets the backoff
      if (typeof msg.data === "string") {
        let data;
        try { data = JSON.parse(msg.data); } catch (e) { return; }
        this.onMessage(data);
      } else {
        this.onBinary(new Uint8Array(msg.data));
      }
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (!this.reconnect || this.finalCodes.includes(event.code) ||
          (event.code === 1000 && this.finalCodes.includes(1000))) {
        this.stopped = true;
        this.onStatus("closed", event.code, event.reason);
        return;
      }
      const wait = Math.round(this.delay * (0.8 + Math.random() * 0.4));
      this.delay = Math.min(this.delay * 2, this.maxDelay);
      this.onStatus("waiting", event.code, wait);
      this.timer = setTimeout(() => this.connect(), wait);
    };
  }

  send(data) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(typeof data === "string" || data instanceof Uint8Array ? data : JSON.stringify(data));
    return true;
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this.retryNow);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
  }

  /** Drop the current connection and connect again now (new parameters). */
  restart() {
    this.stopped = false;
    this.delay = this.minDelay;
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
    this.connect();
  }
}

export function statusText(state, code, extra) {
  if (state === "open") return "Live";
  if (state === "connecting") return "Connecting…";
  if (state === "waiting") return `Disconnected; retrying in ${Math.ceil(extra / 1000)} s`;
  const why = {
    4401: "signed out", 4403: "not allowed", 4404: "not found", 4408: "idle timeout",
    4409: "container not running", 4400: "bad request", 4429: "output not acknowledged",
    4422: "shell not available", 4405: "not available for this task",
  }[code];
  if (why) return `Closed (${why})`;
  // An unexpected code (1006: the connection dropped, 1011: a server error) is named, so
  // a user reporting it, or a failing test, says which.
  return code && code !== 1000 && code !== 1005 ? `Closed (code ${code})` : "Closed";
}
