"use strict";
// Overview: how many targets are up and down, alerts firing and pending,
// silences in force, and the latest notifications.

(() => {
  const { h, get, when, badge, table, empty } = WP;

  function card(href, title, figures) {
    return h("a", { class: "card", href },
      h("h2", {}, title),
      h("div", { class: "figures" }, figures.map(([n, label, kind]) =>
        h("div", { class: `figure ${n > 0 ? kind : ""}` },
          h("span", { class: "number" }, String(n)), h("span", {}, label)))));
  }

  async function render() {
    const [targets, alerts, silences, notes] = await Promise.all([
      get("api/v1/targets?state=active"),
      get("api/v1/alerts"),
      get("api/v2/silences"),
      get("api/v1/notifications?limit=10"),
    ]);
    const active = targets.activeTargets || [];
    const up = active.filter((t) => t.health === "up").length;
    const count = (state) => alerts.alerts.filter((a) => a.state === state).length;
    const silenced = silences.filter((s) => s.status.state === "active").length;
    const failed = notes.filter((n) => n.event === "failed").length;
    return h("div", {},
      h("div", { class: "cards" },
        card("targets", "Targets", [[up, "up", "ok"], [active.length - up, "down", "bad"]]),
        card("alerts", "Alerts", [[count("firing"), "firing", "bad"], [count("pending"), "pending", "warn"]]),
        card("silences", "Silences", [[silenced, "active", "info"]]),
        card("notifications", "Notifications", [[notes.length, "recent", ""], [failed, "failed", "bad"]])),
      h("h2", {}, "Recent notifications"),
      notes.length === 0
        ? empty("Nothing sent yet.")
        : table(["When", "Event", "Receiver", "Why", "Alerts"], notes.map((n) =>
          h("tr", {},
            h("td", {}, when(n.time)),
            h("td", {}, badge(n.event)),
            h("td", {}, `${n.receiver} · ${n.integration}`),
            h("td", {}, n.reason),
            h("td", {}, `${n.firing} firing, ${n.resolved} resolved`)))));
  }

  WP.run(render);
})();
