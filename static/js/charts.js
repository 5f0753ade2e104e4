/* The Monitoring charts: uPlot (static/vendor/uplot) over the JSON of
 * apps/monitoring/charts.py.
 *
 * Each [data-charts] section fetches its data-src with ?range=, draws one chart per
 * entry (limits dashed), and marks the times the object's containers restarted with
 * red vertical lines. The range buttons fetch again and keep the choice in the URL, so a
 * link or a reload shows the same range. After drawing, the section carries
 * data-rendered (the number of charts) for people's scripts and the browser tests.
 */

const COLOURS = ["#1f6feb", "#2da44e", "#bf8700", "#8250df", "#cf222e", "#57606a"];
const LIMIT_COLOUR = "#8c959f";
const RESTART_COLOUR = "rgba(207, 34, 46, 0.7)";
// The least top of a y axis per unit, so a flat zero line is drawn low, with whole ticks.
const FLOOR = { percent: 10, bytes: 1024 * 1024, bytes_per_second: 1024, per_second: 1, ms: 10 };

function formatBytes(value) {
  if (value == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Math.abs(value);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${(Math.sign(value) * v).toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatValue(unit, value) {
  if (value == null) return "–";
  switch (unit) {
    case "percent":
      return `${value.toFixed(1)} %`;
    case "bytes":
      return formatBytes(value);
    case "bytes_per_second":
      return `${formatBytes(value)}/s`;
    case "per_second":
      return `${value.toFixed(value >= 10 ? 0 : 2)}/s`;
    case "ms":
      return `${value.toFixed(0)} ms`;
    default:
      return `${Math.round(value)}`;
  }
}

function restartMarkers(times) {
  return {
    hooks: {
      draw: [
        (u) => {
          const { ctx } = u;
          const { top, height } = u.bbox;
          ctx.save();
          ctx.strokeStyle = RESTART_COLOUR;
          ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
          for (const t of times) {
            const x = Math.round(u.valToPos(t, "x", true));
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
          }
          ctx.restore();
        },
      ],
    },
  };
}

function drawChart(grid, chart, restarts, width) {
  const box = document.createElement("figure");
  box.className = "chart";
  box.dataset.chartKey = chart.key;
  const caption = document.createElement("figcaption");
  caption.textContent = chart.title;
  box.appendChild(caption);
  grid.appendChild(box);
  const inRange = restarts.filter((t) => t >= chart.times[0] && t <= chart.times.at(-1));
  box.dataset.restarts = String(chart.key === "cpu" ? inRange.length : 0);
  const series = [{}];
  chart.series.forEach((line, i) => {
    series.push({
      label: line.label,
      stroke: line.limit ? LIMIT_COLOUR : COLOURS[i % COLOURS.length],
      dash: line.limit ? [6, 4] : undefined,
      width: line.limit ? 1.5 : 2,
      spanGaps: false,
      value: (u, v) => formatValue(chart.unit, v),
    });
  });
  const options = {
    width,
    height: 220,
    series,
    axes: [{}, { size: 80, values: (u, ticks) => ticks.map((v) => formatValue(chart.unit, v)) }],
    scales: { y: { range: (u, min, max) => [0, Math.max(max, FLOOR[chart.unit] || 1)] } },
    plugins: chart.key === "cpu" && inRange.length ? [restartMarkers(inRange)] : [],
  };
  const data = [chart.times, ...chart.series.map((line) => line.values)];
  return new window.uPlot(options, data, box);
}

async function load(section, range) {
  const status = section.querySelector("[data-charts-status]");
  const grid = section.querySelector("[data-charts-grid]");
  status.textContent = "Loading…";
  section.dataset.range = range;
  section.querySelectorAll("[data-range-choice]").forEach((button) => {
    const chosen = button.dataset.rangeChoice === range;
    button.classList.toggle("outline", !chosen);
    button.setAttribute("aria-pressed", chosen ? "true" : "false");
  });
  let response;
  try {
    response = await fetch(`${section.dataset.src}?range=${encodeURIComponent(range)}`, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
  } catch (error) {
    status.textContent = `The charts could not be loaded: ${error}`;
    return;
  }
  if (!response.ok) {
    status.textContent = `The charts could not be loaded (HTTP ${response.status}).`;
    return;
  }
  const payload = await response.json();
  (section.plots || []).forEach((plot) => plot.destroy());
  grid.replaceChildren();
  const width = Math.max(grid.clientWidth || section.clientWidth || 600, 300);
  const columns = width > 900 ? 2 : 1;
  const each = Math.floor(width / columns) - 16;
  section.plots = payload.charts.map((chart) => drawChart(grid, chart, payload.restarts, each));
  section.dataset.rendered = String(section.plots.length);
  section.dataset.restarts = String(payload.restarts.length);
  if (!payload.charts.length) {
    status.textContent = "No samples in this range yet: the collector records every running container's figures on its interval.";
  } else {
    const step = payload.step >= 60 ? `${payload.step / 60} min` : `${payload.step} s`;
    const restarts = payload.restarts.length
      ? `; ${payload.restarts.length} restart${payload.restarts.length > 1 ? "s" : ""} marked in red`
      : "";
    status.textContent = `One point every ${step}${restarts}.`;
  }
}

function start(section) {
  section.querySelectorAll("[data-range-choice]").forEach((button) => {
    button.addEventListener("click", () => {
      const range = button.dataset.rangeChoice;
      const url = new URL(window.location.href);
      url.searchParams.set("range", range);
      window.history.replaceState(null, "", url);
      load(section, range);
    });
  });
  let resizing;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => load(section, section.dataset.range), 250);
  });
  load(section, section.dataset.range);
}

function whenReady(callback) {
  if (window.uPlot) callback();
  else window.addEventListener("load", callback, { once: true });
}

whenReady(() => document.querySelectorAll("[data-charts]").forEach(start));
