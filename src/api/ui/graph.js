"use strict";
// Graph: a PromQL box and a time window; draws query_range's answer as an
// SVG line chart with one line per series and a legend. The expression
// and window live in the URL (?expr=...&range=1h), so a graph is a link.

(() => {
  const { h, svg, get, selector, empty } = WP;
  const RANGES = { "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400, "1w": 604800 };
  const W_MIN = 400;
  const HEIGHT = 320;
  const PAD = { left: 64, right: 12, top: 10, bottom: 28 };
  const COLORS = 10; // classes s0..s9 in style.css

  const params = new URLSearchParams(location.search);
  const expr = h("input", { id: "expr", name: "expr", placeholder: "PromQL expression, e.g. rate(watchpost_api_requests_total[5m])", autocomplete: "off", spellcheck: "false" });
  expr.value = params.get("expr") || "";
  const range = h("select", { id: "range", name: "range", "aria-label": "time window" },
    Object.keys(RANGES).map((r) => h("option", { value: r }, r)));
  range.value = RANGES[params.get("range")] ? params.get("range") : "1h";
  const form = h("form", { class: "graph-form" }, expr, range, h("button", { type: "submit", id: "execute" }, "Execute"));

  // About five round steps covering [lo, hi].
  function ticks(lo, hi) {
    const raw = (hi - lo) / 5;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
    const out = [];
    for (let i = Math.floor(lo / step); i <= Math.ceil(hi / step); i++) out.push(i * step);
    return out;
  }

  function number(v) {
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(6)));
  }

  function clock(t, span) {
    const d = new Date(t * 1000);
    const opts = { hour: "2-digit", minute: "2-digit", hour12: false };
    if (span <= 900) opts.second = "2-digit";
    if (span > 86400) { opts.month = "short"; opts.day = "numeric"; }
    return d.toLocaleString(undefined, opts);
  }

  // One path per series; a gap longer than two steps (or a NaN) breaks
  // the line, and a lone point is drawn as a dot (round cap).
  function pathData(values, x, y, step) {
    let d = "";
    let last = null;
    for (const [t, v] of values) {
      if (!Number.isFinite(v)) { last = null; continue; }
      const pt = `${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      d += last === null || t - last > 2 * step ? `M${pt}L${pt}` : `L${pt}`;
      last = t;
    }
    return d;
  }

  function chart(result, start, end, step, width) {
    const series = result.map((s) => ({
      name: selector(s.metric),
      values: s.values.map(([t, v]) => [t, parseFloat(v)]),
    }));
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of series) for (const [, v] of s.values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!Number.isFinite(lo)) return empty("The query returned no finite values in this window.");
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
    const ys = ticks(lo, hi);
    lo = ys[0];
    hi = ys[ys.length - 1];
    const plotW = width - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + ((t - start) / (end - start)) * plotW;
    const y = (v) => PAD.top + ((hi - v) / (hi - lo)) * plotH;
    const grid = ys.map((v) => [
      svg("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v) }),
      svg("text", { class: "tick", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, number(v)),
    ]);
    const xt = [];
    for (let i = 0; i <= 5; i++) {
      const t = start + ((end - start) * i) / 5;
      xt.push(svg("text", { class: "tick", x: x(t), y: HEIGHT - 8, "text-anchor": i === 0 ? "start" : i === 5 ? "end" : "middle" }, clock(t, end - start)));
    }
    const lines = series.map((s, i) =>
      svg("path", { class: `series s${i % COLORS}`, "data-series": i, d: pathData(s.values, x, y, step) }));
    const plot = svg("svg", { class: "chart", width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img", "aria-label": "graph" },
      grid, xt, svg("rect", { class: "frame", x: PAD.left, y: PAD.top, width: plotW, height: plotH }), lines);
    const legend = h("ul", { class: "legend" }, series.map((s, i) => {
      const li = h("li", { class: `s${i % COLORS}` }, h("span", { class: "swatch" }), s.name);
      // Hovering a legend entry brings its line forward.
      const focus = (on) => {
        plot.classList.toggle("focus", on);
        lines[i].classList.toggle("hl", on);
      };
      li.addEventListener("mouseenter", () => focus(true));
      li.addEventListener("mouseleave", () => focus(false));
      return li;
    }));
    return h("div", {}, plot, legend);
  }

  async function render() {
    const q = expr.value.trim();
    if (!q) return empty("Enter a PromQL expression and press Execute.");
    const span = RANGES[range.value];
    const end = Date.now() / 1000;
    const start = end - span;
    const step = Math.max(1, Math.ceil(span / 250));
    const qs = new URLSearchParams({ query: q, start: start.toFixed(3), end: end.toFixed(3), step: String(step) });
    const data = await get(`api/v1/query_range?${qs}`);
    if (data.resultType !== "matrix") throw new Error(`expected a range vector, got ${data.resultType}`);
    if (data.result.length === 0) return empty("The query returned no series in this window.");
    const width = Math.max(W_MIN, document.getElementById("content").clientWidth);
    return chart(data.result, start, end, step, width);
  }

  document.getElementById("content").before(form);
  const refresh = WP.run(render, { every: 0 });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    history.replaceState(null, "", `graph?${new URLSearchParams({ expr: expr.value.trim(), range: range.value })}`);
    refresh();
  });
})();
