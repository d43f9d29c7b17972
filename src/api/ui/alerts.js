"use strict";
// Alerts: pending and firing alerts from the rules, with labels,
// annotations and since when, joined with the notification pipeline's
// view (silenced, inhibited) and alerts that other senders pushed. Live
// through the alert stream (server-sent events); polls every 5 s when the
// stream is not there or fails.

(() => {
  const { h, get, when, labels, badge, table, empty } = WP;

  // Whether every label of `sub` has the same value in `sup` (the
  // pipeline's copy of a rule alert also carries the external labels).
  function within(sub, sup) {
    return Object.entries(sub).every(([k, v]) => sup[k] === v);
  }

  // A link to the silence form with the alert's labels as matchers.
  function silenceLink(lbls) {
    const q = new URLSearchParams({ labels: JSON.stringify(lbls) });
    return h("a", { class: "button", href: `silences?${q}` }, "Silence");
  }

  function annotations(obj) {
    const names = Object.keys(obj || {}).sort();
    if (names.length === 0) return "";
    return h("dl", { class: "annotations" },
      names.map((n) => [h("dt", {}, n), h("dd", {}, obj[n])]));
  }

  function row(a) {
    const st = a.pipeline && a.pipeline.status;
    return h("tr", { class: `row-${a.state}` },
      h("td", {}, labels(a.labels)),
      h("td", {}, badge(a.state),
        st && st.silencedBy.length ? [" ", badge("silenced")] : "",
        st && st.inhibitedBy.length ? [" ", badge("inhibited")] : "",
        a.source === "pushed" ? [" ", badge("pushed")] : ""),
      h("td", {}, when(a.since)),
      h("td", {}, a.value === undefined ? "" : a.value),
      h("td", {}, annotations(a.annotations)),
      h("td", {}, silenceLink(a.pipeline ? a.pipeline.labels : a.labels)));
  }

  async function render() {
    const [rules, pipeline] = await Promise.all([get("api/v1/alerts"), get("api/v2/alerts")]);
    const matched = new Set();
    const rows = rules.alerts.map((a) => {
      const p = pipeline.find((x) => !matched.has(x) && within(a.labels, x.labels));
      if (p) matched.add(p);
      return { ...a, since: a.activeAt, value: Number(a.value), pipeline: p };
    });
    for (const p of pipeline.filter((x) => !matched.has(x))) {
      rows.push({ labels: p.labels, annotations: p.annotations, state: "firing", since: p.startsAt, pipeline: p, source: "pushed" });
    }
    const order = { firing: 0, pending: 1 };
    rows.sort((x, y) => order[x.state] - order[y.state] || (x.since < y.since ? -1 : 1));
    if (rows.length === 0) return empty("No alerts are pending or firing.");
    return table(["Alert", "State", "Since", "Value", "Annotations", ""], rows.map(row));
  }

  const refresh = WP.run(render, { every: 0 });

  // Re-fetches at most every 200 ms however many events arrive.
  let pending = null;
  function soon() {
    if (pending === null) pending = setTimeout(() => { pending = null; refresh(); }, 200);
  }

  function poll() {
    WP.setNote("polling every 5s");
    setInterval(refresh, 5000);
  }

  if (!window.EventSource) {
    poll();
  } else {
    const stream = new EventSource("api/v1/alerts/stream");
    stream.addEventListener("alert", soon);
    stream.addEventListener("reset", soon);
    // After a reconnect, events may have been missed: fetch everything.
    stream.addEventListener("open", () => { WP.setNote("live"); soon(); });
    stream.addEventListener("error", () => {
      // CLOSED: the server refused the stream (no such endpoint, not an
      // event stream); the browser will not retry, so poll instead.
      if (stream.readyState === EventSource.CLOSED) poll();
    });
  }
})();
