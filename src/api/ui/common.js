"use strict";
// Shared by every page: DOM building from text (never HTML parsing, so a
// label value can not become markup), JSON requests with readable errors,
// time formatting and the refresh loop. Pages render into #content and
// report progress in #status.

const WP = (() => {
  const SVG_NS = "http://www.w3.org/2000/svg";

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  // attrs: attribute values as text; `on<event>` keys take listeners.
  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2), v);
      } else {
        el.setAttribute(k, v === true ? "" : String(v));
      }
    }
    return el;
  }

  // h("td", {class: "x"}, "text", child, [more]) builds an HTML element.
  function h(tag, attrs, ...children) {
    return append(setAttrs(document.createElement(tag), attrs), children);
  }

  // The same for SVG elements.
  function svg(tag, attrs, ...children) {
    return append(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);
  }

  // Sends a request and answers the JSON body (the `data` of Prometheus's
  // envelope). Errors carry the server's own message: Prometheus's
  // `error`, Alertmanager's JSON string or go-swagger's `message`.
  async function request(method, url, body) {
    const opts = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(url, opts);
    } catch (e) {
      throw new Error(`${method} ${url}: ${e.message}`);
    }
    const text = await resp.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      // Not JSON (a plain-text error): the text itself is the message.
    }
    if (!resp.ok) {
      let why = text.trim() || resp.statusText;
      if (typeof json === "string") why = json;
      else if (json && (json.error || json.message)) why = json.error || json.message;
      throw new Error(`${method} ${url}: ${resp.status}: ${why}`);
    }
    if (json && json.status === "success" && "data" in json) return json.data;
    return json;
  }

  const get = (url) => request("GET", url);

  // 95 -> "1m 35s"; sub-second values in ms.
  function human(sec) {
    const s = Math.abs(sec);
    if (s < 1) return `${Math.round(s * 1000)}ms`;
    const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
    const parts = [];
    let rest = Math.floor(s);
    for (const [name, size] of units) {
      if (rest >= size && parts.length < 2) {
        parts.push(`${Math.floor(rest / size)}${name}`);
        rest %= size;
      } else if (parts.length) {
        break;
      }
    }
    return parts.join(" ");
  }

  // Go's zero time and missing times read "never".
  function parseTime(iso) {
    const t = Date.parse(iso);
    return Number.isFinite(t) && t > 0 ? t : null;
  }

  // A relative time ("12s ago", "in 2h") with the exact time on hover.
  function when(iso) {
    const t = parseTime(iso);
    if (t === null) return h("span", { class: "muted" }, "never");
    const d = (Date.now() - t) / 1000;
    const text = Math.abs(d) < 1 ? "just now" : d > 0 ? `${human(d)} ago` : `in ${human(d)}`;
    return h("time", { datetime: iso, title: new Date(t).toString() }, text);
  }

  // Seconds as a duration: "3.2ms", "1.25s".
  function seconds(sec) {
    if (!Number.isFinite(sec)) return "";
    return sec < 1 ? `${(sec * 1000).toFixed(1)}ms` : `${sec.toFixed(2)}s`;
  }

  // A label set as chips, `alertname` first; `omit` names are left out.
  function labels(obj, omit = []) {
    const names = Object.keys(obj || {}).filter((n) => !omit.includes(n)).sort();
    names.sort((a, b) => (a === "alertname" ? -1 : b === "alertname" ? 1 : 0));
    return h("span", { class: "labels" },
      names.map((n) => h("span", { class: "label" }, `${n}="${obj[n]}"`)));
  }

  // A label set as PromQL selector text: {a="1", b="2"}.
  function selector(obj) {
    const name = obj.__name__ || "";
    const rest = Object.keys(obj).filter((n) => n !== "__name__").sort()
      .map((n) => `${n}=${JSON.stringify(obj[n])}`);
    return rest.length ? `${name}{${rest.join(", ")}}` : name || "{}";
  }

  function badge(text, kind) {
    return h("span", { class: `badge badge-${kind || text}` }, text);
  }

  function table(headers, rows) {
    return h("table", {},
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
      h("tbody", {}, rows));
  }

  function empty(text) {
    return h("p", { class: "muted empty" }, text);
  }

  let note = "";
  let updated = "";

  function setStatus(text, isError) {
    const el = document.getElementById("status");
    el.className = isError ? "error" : "muted";
    el.replaceChildren(text);
  }

  function showUpdated() {
    setStatus(`Updated ${updated}${note ? ` · ${note}` : ""}`);
  }

  // Renders `render()`'s node into `target` now and every `every` ms
  // (0: once). A failure shows in the status line and keeps the last good
  // content. body[data-loaded] counts successful renders, for tests.
  function run(render, { every = 10000, target = document.getElementById("content") } = {}) {
    let busy = false;
    let loaded = 0;
    async function refresh() {
      if (busy) return;
      busy = true;
      try {
        target.replaceChildren(await render());
        loaded += 1;
        document.body.dataset.loaded = String(loaded);
        updated = new Date().toLocaleTimeString();
        showUpdated();
      } catch (e) {
        setStatus(e.message, true);
      } finally {
        busy = false;
      }
    }
    refresh();
    if (every > 0) setInterval(refresh, every);
    return refresh;
  }

  // Extra words for the status line ("live", "polling every 5s").
  function setNote(text) {
    note = text;
    if (updated && document.getElementById("status").className !== "error") showUpdated();
  }

  for (const a of document.querySelectorAll("header nav a")) {
    if (a.dataset.page === document.body.dataset.page) a.setAttribute("aria-current", "page");
  }

  return {
    h, svg, request, get, human, parseTime, when, seconds, labels, selector, badge,
    table, empty, run, setStatus, setNote,
  };
})();
