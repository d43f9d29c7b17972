"use strict";
// Rules: every rule group with each rule's health, last evaluation,
// evaluation time, alert state and error.

(() => {
  const { h, get, when, seconds, badge, table, empty } = WP;

  function rule(r) {
    return h("tr", { class: r.health === "err" ? "row-bad" : "" },
      h("td", {}, h("strong", {}, r.name), " ", badge(r.type, "muted"),
        h("div", {}, h("code", { class: "query" }, r.query))),
      h("td", {}, badge(r.health)),
      h("td", {}, r.type === "alerting" ? badge(r.state) : ""),
      h("td", {}, when(r.lastEvaluation)),
      h("td", {}, seconds(r.evaluationTime)),
      h("td", { class: "error-text" }, r.lastError || ""));
  }

  function group(g) {
    return h("section", {},
      h("h2", {}, g.name, " ",
        h("span", { class: "muted" }, `${g.file} · every ${WP.human(g.interval)} · last ${seconds(g.evaluationTime)}`)),
      table(["Rule", "Health", "State", "Last evaluation", "Duration", "Error"], g.rules.map(rule)));
  }

  async function render() {
    const data = await get("api/v1/rules");
    if (data.groups.length === 0) return empty("No rule groups are loaded.");
    return h("div", {}, data.groups.map(group));
  }

  WP.run(render);
})();
