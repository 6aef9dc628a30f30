/* `runbase report`: draws the self-contained report from its embedded data (offline). */
"use strict";

(() => {
  const { el } = RB;
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const root = document.getElementById("report");
  const runs = data.runs.map((r, i) => Object.assign({ color: RB.COLORS[i % RB.COLORS.length] }, r));
  const byId = new Map(runs.map((r) => [r.id, r]));
  const swatch = (r) => el("span", { class: "swatch", style: "background:" + r.color });

  function codeText(code) {
    if (!code) return "no code snapshot";
    if (code.kind !== "git") return "directory snapshot";
    return (code.commit || "(no commit)").slice(0, 10) + (code.branch ? " on " + code.branch : "") + (code.patch_id ? ", uncommitted changes" : ", clean");
  }

  function runsTable() {
    return RB.table(
      ["", "id", "name", "status", "started", "duration", "code", "command"],
      runs.map((r) => [
        swatch(r),
        el("span", { class: "mono" }, r.id),
        r.name,
        RB.statusBadge(r.status),
        RB.fmtTime(r.started_at),
        RB.fmtDuration(r.duration_s),
        codeText(r.code),
        el("code", { class: "command" }, (r.command || []).join(" ")),
      ]),
      { class: "grid", id: "report-runs" }
    );
  }

  function valuesTable(title, scope, keys, fmt) {
    if (!keys.length) return el("p", { class: "muted" }, "no " + title.toLowerCase());
    const rows = keys.map((k) => {
      const vals = runs.map((r) => (r[scope] || {})[k]);
      const differs = runs.length > 1 && new Set(vals.map((v) => JSON.stringify(v ?? null))).size > 1;
      return el("tr", { class: differs ? "differs" : "" }, el("th", { class: "mono" }, k), vals.map((v) => el("td", { class: typeof fmt(v) === "number" ? "num" : "" }, RB.fmtValue(fmt(v)))));
    });
    return el(
      "table",
      { class: "grid compare-table", id: "report-" + scope },
      el("thead", {}, el("tr", {}, el("th", {}, title), runs.map((r) => el("th", {}, swatch(r), r.name)))),
      el("tbody", {}, rows)
    );
  }

  function keysOf(scope) {
    return Array.from(new Set(runs.flatMap((r) => Object.keys(r[scope] || {})))).sort();
  }

  function charts() {
    const grid = el("div", { class: "chart-grid", id: "report-charts" });
    const todo = [];
    for (const s of data.series) {
      const { node, card } = RB.chartCard(s.key);
      grid.append(card);
      const traces = s.runs.map((p) => {
        const r = byId.get(p.id);
        return { x: p.steps, y: RB.numbers(p.values), mode: p.steps.length <= 30 ? "lines+markers" : "lines", name: r.name, line: { color: r.color, width: 2 } };
      });
      todo.push([node, traces]);
    }
    return [grid, todo];
  }

  /** A change's diff is the Diff section below: the link scrolls to its part. */
  function diffLink(section) {
    const go = (e) => {
      e.preventDefault();
      const target = Array.from(document.querySelectorAll("#report-diff .diff-section")).find((s) => s.dataset.section === section) || document.getElementById("report-diff");
      if (target) target.scrollIntoView({ block: "start" });
    };
    return data.diff ? el("a", { href: "#report-diff", class: "explain-diff", onclick: go }, "diff") : null;
  }

  // runs are not links here: the report is one file, offline, without the store
  const explainSection = data.explain
    ? el("section", { class: "report-section", id: "report-explain" }, el("h2", {}, "Explain"), RB.renderExplain(data.explain, { diffLink }))
    : null;
  const [grid, todo] = charts();
  RB.fill(root, // fill, not append: a section left out (null) is no "null" text
    el("h1", {}, data.title),
    el("p", { class: "muted" }, "generated " + RB.fmtTime(data.generated_at) + " by runbase " + data.runbase_version),
    el("section", { class: "report-section" }, el("h2", {}, "Runs"), runsTable()),
    el("section", { class: "report-section" }, el("h2", {}, "Parameters"), valuesTable("parameter", "params", keysOf("params"), (v) => v)),
    el("section", { class: "report-section" }, el("h2", {}, "Metrics"), valuesTable("metric", "metrics", keysOf("metrics"), (m) => (m && typeof m === "object" ? m.value : m))),
    el("section", { class: "report-section" }, el("h2", {}, "Charts"), data.series.length ? grid : el("p", { class: "muted" }, "no metric series")),
    explainSection,
    data.diff ? el("section", { class: "report-section", id: "report-diff" }, el("h2", {}, "Diff"), RB.renderDiff(data.diff)) : null
  );
  if (explainSection) RB.drawExplain(explainSection, data.explain);
  for (const [node, traces] of todo) {
    RB.plot(node, traces, { height: 300, showlegend: traces.length > 1 && traces.length <= 12, margin: { l: 55, r: 10, t: 10, b: 25 } });
  }
})();
