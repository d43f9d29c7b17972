"use strict";
// Notifications: the history of what was sent to whom, when and why,
// what failed and what was held back (newest first).

(() => {
  const { h, get, when, badge, table, empty } = WP;
  const FAILURES = ["failed", "attempt_failed"];

  const limit = h("select", { id: "limit", "aria-label": "entries" },
    [50, 100, 500, 1000].map((n) => h("option", { value: n }, `last ${n}`)));
  limit.value = "100";
  const onlyFailures = h("input", { type: "checkbox", id: "only-failures" });

  function row(n) {
    return h("tr", { class: FAILURES.includes(n.event) ? "row-bad" : "" },
      h("td", {}, when(n.time)),
      h("td", {}, badge(n.event)),
      h("td", {}, n.receiver),
      h("td", {}, h("code", {}, n.integration)),
      h("td", {}, n.reason),
      h("td", {}, `${n.firing} firing`, n.resolved ? `, ${n.resolved} resolved` : ""),
      h("td", {}, String(n.attempts)),
      h("td", {}, h("div", { class: FAILURES.includes(n.event) ? "error-text" : "" }, n.detail),
        h("div", { class: "muted small" }, n.groupKey)));
  }

  async function render() {
    const all = await get(`api/v1/notifications?limit=${limit.value}`);
    const shown = onlyFailures.checked ? all.filter((n) => FAILURES.includes(n.event)) : all;
    if (shown.length === 0) return empty(onlyFailures.checked ? "No failures." : "Nothing sent yet.");
    return table(["When", "Event", "Receiver", "Integration", "Why", "Alerts", "Attempts", "Detail"], shown.map(row));
  }

  document.getElementById("content").before(h("p", { class: "controls" },
    limit, " ", h("label", {}, onlyFailures, " Only failures")));
  const refresh = WP.run(render);
  limit.addEventListener("change", refresh);
  onlyFailures.addEventListener("change", refresh);
})();
