"use strict";
// Silences: create one (from an alert, whose labels arrive as matchers in
// ?labels=<JSON object>), list them, expire them; through Alertmanager's
// API v2.

(() => {
  const { h, get, request, when, badge, table, empty } = WP;
  const OPS = { "=": [true, false], "!=": [false, false], "=~": [true, true], "!~": [false, true] };
  const UNITS = { m: 60, h: 3600, d: 86400, w: 604800 };

  // "1h30m" -> 5400; null when it is not a positive duration.
  function parseDuration(text) {
    const s = text.trim();
    if (!/^(\d+[wdhm])+$/.test(s)) return null;
    let total = 0;
    for (const [, n, unit] of s.matchAll(/(\d+)([wdhm])/g)) total += Number(n) * UNITS[unit];
    return total > 0 ? total : null;
  }

  const rows = h("div", { class: "matchers" });
  function matcherRow(name = "", op = "=", value = "") {
    const select = h("select", { "aria-label": "operator", name: "op" },
      Object.keys(OPS).map((o) => h("option", { value: o }, o)));
    select.value = op;
    const row = h("div", { class: "matcher" },
      h("input", { name: "name", placeholder: "label", "aria-label": "label name", value: name }),
      select,
      h("input", { name: "value", placeholder: "value", "aria-label": "label value", value }),
      h("button", { type: "button", class: "link", title: "remove matcher", onclick: () => row.remove() }, "✕"));
    rows.append(row);
  }

  const duration = h("input", { id: "duration", name: "duration", value: "2h", size: 8 });
  const createdBy = h("input", { id: "created-by", name: "createdBy", value: localStorage.getItem("watchpost.createdBy") || "" });
  const comment = h("textarea", { id: "comment", name: "comment", rows: 2 });
  const message = h("p", { class: "message", role: "status" });
  const form = h("form", { class: "silence-form" },
    h("h2", {}, "New silence"),
    h("fieldset", {}, h("legend", {}, "Matchers"), rows,
      h("button", { type: "button", class: "link", onclick: () => matcherRow() }, "+ matcher")),
    h("div", { class: "fields" },
      h("label", {}, "Duration ", duration, h("span", { class: "muted" }, " e.g. 30m, 2h, 1d")),
      h("label", {}, "Created by ", createdBy)),
    h("label", { class: "block" }, "Comment ", comment),
    h("button", { type: "submit", id: "create" }, "Create silence"),
    message);

  function say(text, isError) {
    message.className = isError ? "message error" : "message ok";
    message.replaceChildren(text);
  }

  async function create(ev) {
    ev.preventDefault();
    const matchers = [...rows.children].map((r) => {
      const [isEqual, isRegex] = OPS[r.querySelector("[name=op]").value];
      return { name: r.querySelector("[name=name]").value.trim(), value: r.querySelector("[name=value]").value, isEqual, isRegex };
    }).filter((m) => m.name !== "");
    const secs = parseDuration(duration.value);
    if (matchers.length === 0) return say("Add at least one matcher with a label name.", true);
    if (secs === null) return say(`Duration "${duration.value}" is not valid: use numbers with m, h, d or w, e.g. 2h or 1h30m.`, true);
    if (!createdBy.value.trim() || !comment.value.trim()) return say("Fill in who creates the silence and why.", true);
    const now = new Date();
    try {
      const res = await request("POST", "api/v2/silences", {
        matchers,
        startsAt: now.toISOString(),
        endsAt: new Date(now.getTime() + secs * 1000).toISOString(),
        createdBy: createdBy.value.trim(),
        comment: comment.value.trim(),
      });
      localStorage.setItem("watchpost.createdBy", createdBy.value.trim());
      say(`Created silence ${res.silenceID}.`);
      comment.value = "";
      rows.replaceChildren();
      matcherRow();
      history.replaceState(null, "", "silences");
      refresh();
    } catch (e) {
      say(e.message, true);
    }
  }
  form.addEventListener("submit", create);

  function matcherText(m) {
    const op = m.isRegex ? (m.isEqual ? "=~" : "!~") : (m.isEqual ? "=" : "!=");
    return h("span", { class: "label" }, `${m.name}${op}${JSON.stringify(m.value)}`);
  }

  async function expire(id) {
    try {
      await request("DELETE", `api/v2/silence/${encodeURIComponent(id)}`);
      refresh();
    } catch (e) {
      WP.setStatus(e.message, true);
    }
  }

  function silenceTable(list) {
    return table(["State", "Matchers", "Starts", "Ends", "Created by", "Comment", ""], list.map((s) =>
      h("tr", { "data-id": s.id },
        h("td", {}, badge(s.status.state)),
        h("td", {}, h("span", { class: "labels" }, s.matchers.map(matcherText))),
        h("td", {}, when(s.startsAt)),
        h("td", {}, when(s.endsAt)),
        h("td", {}, s.createdBy),
        h("td", {}, s.comment, h("div", { class: "muted small" }, s.id)),
        h("td", {}, s.status.state === "expired" ? "" :
          h("button", { type: "button", class: "expire", onclick: () => expire(s.id) }, "Expire")))));
  }

  async function render() {
    const all = await get("api/v2/silences");
    const live = all.filter((s) => s.status.state !== "expired")
      .sort((a, b) => (a.status.state === b.status.state ? (a.endsAt < b.endsAt ? -1 : 1) : a.status.state === "active" ? -1 : 1));
    const expired = all.filter((s) => s.status.state === "expired")
      .sort((a, b) => (a.endsAt < b.endsAt ? 1 : -1));
    return h("div", {},
      h("h2", {}, "Active and pending"),
      live.length ? silenceTable(live) : empty("No silences are in force."),
      expired.length ? h("details", {}, h("summary", {}, `Expired (${expired.length})`), silenceTable(expired)) : "");
  }

  // Prefill from an alert.
  const params = new URLSearchParams(location.search);
  let prefill = {};
  if (params.has("labels")) {
    try {
      prefill = JSON.parse(params.get("labels"));
      if (typeof prefill !== "object" || prefill === null || Array.isArray(prefill)) throw new Error("not an object");
    } catch (_) {
      prefill = {};
      say("The labels parameter is not a JSON object of label names and values; add matchers by hand.", true);
    }
  }
  for (const [name, value] of Object.entries(prefill)) matcherRow(name, "=", String(value));
  if (rows.children.length === 0) matcherRow();

  const content = document.getElementById("content");
  content.before(form);
  const refresh = WP.run(render);
})();
