/* runbase ui: the saved explanation of two runs (`runbase explain A B`, docs/explain.md),
 * as runbase.render.views.explanation shapes it: a waterfall from A's value to B's and
 * the factor table. Drawn by the explain page and inlined into `runbase report A B`.
 * The report is a file of the store, not trusted: every string goes in as text. */
"use strict";

(() => {
  const { el } = RB;

  /** A number of the view (strict JSON writes NaN/inf as strings), else null. */
  function num(v) {
    if (typeof v === "number") return v;
    return v === "NaN" ? NaN : v === "Infinity" ? Infinity : v === "-Infinity" ? -Infinity : null;
  }

  function fmt(v) {
    const x = num(v);
    if (x === null) return "–";
    return Number.isFinite(x) ? RB.fmtValue(x) : String(x);
  }

  function signed(v) {
    const x = num(v);
    if (x === null) return "–";
    return (x > 0 ? "+" : "") + (Number.isFinite(x) ? RB.fmtValue(x) : String(x));
  }

  function percent(v) {
    const x = num(v);
    return x === null || !Number.isFinite(x) ? "–" : x.toFixed(1) + " %";
  }

  function cut(s, n) {
    return s.length <= n ? s : s.slice(0, n - 1) + "…";
  }

  function section(id, title, ...body) {
    return el("section", { class: "explain-section", id }, el("h3", {}, title), ...body);
  }

  /** A run's id as a link (the UI) or as text (the offline report, or a run gone since). */
  function runRef(opts, id, label, exists) {
    if (opts.runHref && exists !== false) return el("a", { href: opts.runHref(id), class: "mono", title: id }, label || id.slice(0, 10));
    return el("span", { class: "mono", title: exists === false ? id + ": no longer in the store" : id }, (label || id.slice(0, 10)) + (exists === false ? " (deleted)" : ""));
  }

  /** Not explained yet, or the saved explanation cannot be read: what to run. */
  function unexplained(view) {
    const cmd = el("code", { class: "command" }, view.command);
    if (view.problem) {
      return el("div", { class: "error", id: "explain-problem" }, view.problem, el("br"), "To explain again: ", cmd);
    }
    const what = view.metric ? " for the metric " + view.metric : "";
    return el("div", { class: "warning", id: "explain-missing" }, "Not explained yet" + what + ": run ", cmd, " (it re-runs hybrids of the two runs to find which change moved the metric).");
  }

  function summary(view, opts) {
    const parts = [
      el("p", { class: "explain-summary" },
        el("strong", { class: "mono" }, view.metric), ": ", fmt(view.a_value), " (A, ", runRef(opts, view.a.id, view.a.name), ") → ", fmt(view.b_value),
        " (B, ", runRef(opts, view.b.id, view.b.name), "): ", el("strong", {}, signed(view.total))),
    ];
    const m = view.measured || {};
    if (num(m.a) !== null || num(m.b) !== null) {
      parts.push(el("p", { class: "muted" }, "re-run here: A " + fmt(m.a) + ", B " + fmt(m.b) + " (" + signed(m.total) + "); effects are measured against the re-runs"));
    }
    const noise = view.noise || {};
    for (const [flag, who, values, recorded] of [[noise.a_reproduces, "A", noise.a, view.a_value], [noise.b_reproduces, "B", noise.b, view.b_value]]) {
      if (flag === false) {
        parts.push(el("div", { class: "warning explain-noreproduce" }, who + " does not reproduce its own recorded value: recorded " + fmt(recorded) + ", re-run " + (values || []).map(fmt).join(", ")));
      }
    }
    return parts;
  }

  function hybridLinks(f, opts) {
    return f.hybrids.map((h) => el("span", { class: "explain-hybrid" }, runRef(opts, h.run, h.how === "alone" ? "A + it" : "B − it", h.exists), " "));
  }

  function factorTable(view, opts) {
    if (!view.factors.length) return el("p", { class: "muted" }, "no factor was tested");
    const rows = view.factors.map((f) =>
      el("tr", { dataset: { name: f.name }, class: f.significant === false ? "explain-insignificant" : "" },
        el("td", {}, f.kind),
        el("td", {}, el("div", { class: "mono explain-name" }, f.name), f.description && f.description !== f.name ? el("div", { class: "muted explain-description" }, f.description) : null),
        el("td", { class: "num" }, signed(f.effect)),
        el("td", { class: "num" }, signed(f.effect_alone)),
        el("td", { class: "num" }, signed(f.effect_removed)),
        el("td", { class: "num" }, percent(f.share)),
        el("td", {}, f.significant === true ? "yes" : f.significant === false ? "no (within noise)" : "–"),
        el("td", {}, f.breaks_run ? el("span", { class: "badge warn" }, "breaks the run") : ""),
        el("td", {}, hybridLinks(f, opts)),
        el("td", {}, opts.diffLink ? opts.diffLink(f.section, f.name) : null)
      )
    );
    return el("table", { class: "grid", id: "explain-factors" },
      el("thead", {}, el("tr", {}, ["kind", "change", "effect", "alone (A + it)", "removed (B − it)", "share", "significant", "", "hybrid runs", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows));
  }

  function plainTable(id, headers, rows) {
    return RB.table(headers, rows, { class: "grid", id });
  }

  function noiseTable(view) {
    const n = view.noise || {};
    return RB.kvTable([
      ["repeats", fmt(n.repeats)],
      ["re-runs of A", (n.a || []).map(fmt).join(", ")],
      ["re-runs of B", (n.b || []).map(fmt).join(", ")],
      ["spread", fmt(n.spread)],
      ["significant beyond", fmt(n.threshold)],
    ]);
  }

  function searchPart(view) {
    const s = view.search || {};
    const h = view.hybrids || {};
    return [
      el("p", {}, "method: " + (s.method || "?") + "; hybrids used " + fmt(s.used) + " of a budget of " + fmt(s.budget) + "; " + fmt(h.run) + " run, " + fmt(h.cached) + " cached, " + fmt(h.failed) + " failed, " + RB.fmtDuration(num(h.seconds))),
      (s.notes || []).length ? el("ul", { id: "explain-notes" }, s.notes.map((t) => el("li", {}, t))) : null,
    ];
  }

  function hybridTable(view, opts) {
    const runs = (view.hybrids || {}).runs || [];
    if (!runs.length) return null;
    return el("details", { id: "explain-hybrids" }, el("summary", {}, runs.length + " hybrid runs"),
      plainTable("explain-hybrid-runs", ["run", "role", "B's changes in it", metricName(view), "status", ""],
        runs.map((r) => [runRef(opts, r.run, null, r.exists), r.role, el("span", { class: "mono" }, r.factors.join(", ") || "(none: A)"), fmt(r.value), RB.statusBadge(r.status), r.cached ? "cached" : ""])));
  }

  function metricName(view) {
    return view.metric || "value";
  }

  /** The explanation's section: `opts.runHref(id)` links runs (none: ids as text),
   * `opts.diffLink(section, name)` the element that leads to a factor's diff. */
  function renderExplain(view, opts) {
    opts = opts || {};
    const root = el("div", { class: "explain" });
    if (!view.explained) return RB.fill(root, unexplained(view));
    root.append(
      ...summary(view, opts),
      view.waterfall ? el("div", { class: "chart wide", id: "explain-waterfall" }) : el("p", { class: "muted" }, "no waterfall: A's or B's value is not a finite number"),
      section("explain-factors-section", "Changes, largest effect first", factorTable(view, opts)),
      view.interactions.length
        ? section("explain-interactions", "Interactions (changes whose effects do not add up)",
          plainTable("explain-interactions-table", ["changes", "joint effect beyond their own"], view.interactions.map((i) => [el("span", { class: "mono" }, i.factors.join(" + ")), signed(i.effect)])))
        : null,
      view.untestable.length
        ? section("explain-untestable", "Not testable", plainTable("explain-untestable-table", ["kind", "change", "why"], view.untestable.map((u) => [u.kind, el("span", { class: "mono" }, u.name), u.reason])))
        : null,
      view.untried.length
        ? section("explain-untried", "Not tried", plainTable("explain-untried-table", ["change", "why"], view.untried.map((u) => [el("span", { class: "mono" }, u.name), u.reason])))
        : null,
      section("explain-noise", "Noise", noiseTable(view)),
      section("explain-search", "What the search did", ...searchPart(view), hybridTable(view, opts))
    );
    return root;
  }

  /** The waterfall, once the section is in the page (plotly measures its node). */
  function drawExplain(root, view) {
    const node = root.querySelector("#explain-waterfall");
    if (!node || !view.waterfall) return null;
    const steps = view.waterfall.steps;
    const low = num(view.waterfall.low);
    const high = num(view.waterfall.high);
    const pad = (high - low) * 0.2 || Math.abs(high) * 0.05 || 1;
    const idx = steps.map((_, i) => i);
    return RB.plot(node, [{
      type: "waterfall",
      orientation: "v",
      x: idx,
      y: steps.map((s) => num(s.value)),
      measure: steps.map((s) => s.measure),
      text: steps.map((s) => RB.plotText(s.measure === "relative" ? signed(s.value) : fmt(s.value))),
      textposition: "outside",
      hovertext: steps.map((s) => RB.plotText(s.label + ": " + (s.measure === "relative" ? signed(s.value) : fmt(s.value)))),
      hoverinfo: "text",
      connector: { line: { color: "#8c959f", width: 1 } },
      increasing: { marker: { color: "#2da44e" } },
      decreasing: { marker: { color: "#cf222e" } },
      totals: { marker: { color: "#0969da" } },
    }], {
      height: 380,
      showlegend: false,
      margin: { l: 60, r: 15, t: 15, b: 110 },
      // categories by index: a label is text, and two labels alike stay two bars
      xaxis: { tickmode: "array", tickvals: idx, ticktext: steps.map((s) => RB.plotText(cut(s.label, 28))), tickangle: -30 },
      yaxis: { title: { text: RB.plotText(metricName(view)) }, range: [low - pad, high + pad] },
    });
  }

  RB.renderExplain = renderExplain;
  RB.drawExplain = drawExplain;
})();
