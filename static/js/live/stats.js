/* Live stats per running container (ws/containers/<id>/stats/, every ~2 s): CPU %,
 * memory, network and block I/O. `sync(rows)` opens a socket for each running
 * container listed and closes those gone, so scaling keeps the panel in step. */
import { LiveSocket } from "./socket.js";

export function bytes(n) {
  if (n === undefined || n === null) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export class StatsPanel {
  constructor(panel) {
    this.panel = panel;
    this.body = panel ? panel.querySelector("tbody") : null;
    this.sockets = new Map();
  }

  sync(rows) {
    if (!this.body) return;
    const wanted = new Map();
    rows.forEach((row) => {
      // data-stats="off": a Swarm task on a node whose engine Berth cannot reach.
      if (row.dataset.state === "running" && row.dataset.stats !== "off") {
        wanted.set(row.dataset.containerId, row.dataset.name);
      }
    });
    for (const [id, entry] of this.sockets) {
      // Gone, or its stream ended (stopped, restarted): reopened below while it runs.
      if (!wanted.has(id) || entry.socket.stopped) {
        entry.socket.close(); entry.row.remove(); this.sockets.delete(id);
      }
    }
    for (const [id, name] of wanted) {
      if (!this.sockets.has(id)) this.open(id, name);
    }
    this.panel.hidden = this.sockets.size === 0;
  }

  open(id, name) {
    const row = document.createElement("tr");
    row.dataset.statsFor = id;
    const cells = ["name", "cpu", "memory", "net", "block", "pids"].map((key) => {
      const td = document.createElement("td");
      td.dataset.stat = key;
      td.textContent = key === "name" ? name : "…";
      if (key !== "name") td.className = "num";
      row.append(td);
      return td;
    });
    cells[0].className = "mono";
    this.body.append(row);
    const socket = new LiveSocket(`/ws/containers/${id}/stats/`, {
      finalCodes: [1000, 4400, 4401, 4403, 4404, 4405, 4409],
      onMessage: (msg) => { if (msg.type === "stats") this.show(row, msg); },
    });
    this.sockets.set(id, { socket, row });
    socket.connect();
  }

  show(row, s) {
    const set = (key, text) => { row.querySelector(`[data-stat="${key}"]`).textContent = text; };
    set("cpu", `${(s.cpu_percent || 0).toFixed(1)} %`);
    const mem = s.memory || {};
    set("memory", `${bytes(mem.usage)} / ${bytes(mem.limit)}`);
    set("net", `↓ ${bytes((s.net || {}).rx_bytes)} ↑ ${bytes((s.net || {}).tx_bytes)}`);
    set("block", `R ${bytes((s.block || {}).read_bytes)} W ${bytes((s.block || {}).write_bytes)}`);
    set("pids", s.pids ?? "—");
  }
}
