"use strict";
// Targets: every active scrape target by job, with its health, last
// scrape, scrape duration, error and labels.

(() => {
  const { h, get, when, seconds, labels, badge, table, empty } = WP;
  const onlyDown = h("input", { type: "checkbox", id: "only-down" });

  function pool(name, targets) {
    const up = targets.filter((t) => t.health === "up").length;
    const shown = onlyDown.checked ? targets.filter((t) => t.health !== "up") : targets;
    return h("section", { class: "pool" },
      h("h2", {}, name, " ", h("span", { class: "muted" }, `(${up}/${targets.length} up)`)),
      shown.length === 0 ? empty("All targets are up.") :
        table(["Endpoint", "Health", "Labels", "Last scrape", "Duration", "Error"], shown.map((t) =>
          h("tr", { class: t.health === "up" ? "" : "row-bad" },
            h("td", {}, h("code", {}, t.scrapeUrl)),
            h("td", {}, badge(t.health)),
            h("td", {}, labels(t.labels)),
            h("td", {}, when(t.lastScrape)),
            h("td", {}, seconds(t.lastScrapeDuration)),
            h("td", { class: "error-text" }, t.lastError)))));
  }

  async function render() {
    const data = await get("api/v1/targets?state=active");
    const byPool = new Map();
    for (const t of data.activeTargets || []) {
      if (!byPool.has(t.scrapePool)) byPool.set(t.scrapePool, []);
      byPool.get(t.scrapePool).push(t);
    }
    if (byPool.size === 0) return empty("No scrape targets are configured.");
    return h("div", {}, [...byPool.keys()].sort().map((name) => pool(name, byPool.get(name))));
  }

  const refresh = WP.run(render);
  onlyDown.addEventListener("change", refresh);
  document.getElementById("main").insertBefore(
    h("p", { class: "controls" }, h("label", {}, onlyDown, " Only targets that are not up")),
    document.getElementById("content"));
})();
