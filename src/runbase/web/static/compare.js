/* runbase ui: several runs side by side. */
"use strict";

(() => {
  const { el, api } = RB;
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const refs = RB.config.runs || [];

  let model = null; // {runs: [{id, name, status, params, metrics, color}], paramKeys, metricKeys, seriesKeys}
  const curveCharts = new Map(); // key -> {node, data: [{run, steps, values}] | null}
  const opts = { log: false, smoothing: 0 };

  // -- the model ----------------------------------------------------------------------------

  function metricValue(m) {
    if (m && typeof m === "object" && "value" in m) m = m.value;
    if (typeof m === "string") return m === "Infinity" ? Infinity : m === "-Infinity" ? -Infinity : m === "NaN" ? NaN : null;
    return typeof m === "number" ? m : null;
  }

  /** The API's /api/compare answer, as the charts read it. */
  function normalize(data) {
    const runs = data.runs.map((r) => ({
      id: r.id,
      name: r.name,
      status: r.status,
      params: r.params || {},
      metrics: Object.fromEntries(Object.entries(r.metrics || {}).map(([k, m]) => [k, metricValue(m)])),
      color: RB.runColor(r.id), // as on the runs page and every other chart
    }));
    const sorted = (keys) => keys.slice().sort();
    return {
      runs,
      paramKeys: sorted(data.params || []),
      metricKeys: sorted(data.metrics || []),
      paramsDiffer: new Set(data.params_differ || []),
      seriesKeys: (data.series || []).slice().sort((a, b) => a.startsWith("sys/") - b.startsWith("sys/") || a.localeCompare(b)),
    };
  }

  /** Every run's points of one series (downsampled by the server). */
  async function seriesData(key) {
    const out = await Promise.all(
      model.runs.map(async (run) => {
        try {
          const s = await api("/api/runs/" + enc(run.id) + "/series/" + enc(key), { points: 1000 });
          return { run, steps: s.steps, values: RB.numbers(s.values) };
        } catch (e) {
          return null; // this run has no such series
        }
      })
    );
    return out.filter((s) => s);
  }

  // -- header ----------------------------------------------------------------------------------

  function renderRunList() {
    RB.fill($("run-list"),
      ...model.runs.map((r) =>
        el("a", { class: "run-chip", href: RB.runUrl(r.id), title: r.id }, el("span", { class: "swatch", style: "background:" + r.color }), r.name, " ", el("span", { class: "muted mono" }, r.id.slice(0, 8)), " ", RB.statusBadge(r.status))
      )
    );
  }

  // -- curves ----------------------------------------------------------------------------------

  function renderCurves() {
    const grid = $("curves");
    if (!model.seriesKeys.length) {
      RB.fill(grid, el("p", { class: "muted" }, "none of these runs logged a metric series"));
      return;
    }
    RB.fill(grid);
    for (const key of model.seriesKeys) {
      const { node, card } = RB.chartCard(key);
      grid.append(card);
      curveCharts.set(key, { node, data: null });
      observer.observe(card);
    }
  }

  const observer = RB.onceVisible((card) => {
    const key = card.dataset.key;
    const c = curveCharts.get(key);
    seriesData(key).then((data) => {
      c.data = data;
      drawCurve(key, c);
    });
  });

  function drawCurve(key, c) {
    const traces = [];
    for (const s of c.data) {
      const mode = s.steps.length <= 30 ? "lines+markers" : "lines";
      if (opts.smoothing > 0) {
        traces.push({ x: s.steps, y: s.values, mode, line: { color: s.run.color, width: 1 }, opacity: 0.25, hoverinfo: "skip", showlegend: false, legendgroup: s.run.id });
      }
      traces.push({ x: s.steps, y: RB.smooth(s.values, opts.smoothing), mode, name: RB.plotText(s.run.name), legendgroup: s.run.id, line: { color: s.run.color, width: 2 } });
    }
    RB.plot(c.node, traces, {
      height: 300,
      showlegend: c.data.length <= 12,
      yaxis: { type: opts.log ? "log" : "linear" },
      margin: { l: 55, r: 10, t: 10, b: 25 },
    });
  }

  function redrawCurves() {
    for (const [key, c] of curveCharts) if (c.data) drawCurve(key, c);
  }

  // -- parallel coordinates, scatter -----------------------------------------------------------------

  function numeric(v) {
    return typeof v === "number" && Number.isFinite(v);
  }

  /** A plotly dimension for a key: numbers as they are, anything else as categories. */
  function dimension(label, values) {
    if (values.every((v) => v === null || v === undefined || numeric(v))) {
      return { label: RB.plotText(label), values: values.map((v) => (numeric(v) ? v : NaN)) };
    }
    const cats = Array.from(new Set(values.map((v) => RB.fmtValue(v)))).sort();
    return { label: RB.plotText(label), values: values.map((v) => cats.indexOf(RB.fmtValue(v))), tickvals: cats.map((_, i) => i), ticktext: cats.map((c) => RB.plotText(c)) };
  }

  function varying(key, scope) {
    if (scope === "params") return model.paramsDiffer.has(key);
    const vals = model.runs.map((r) => JSON.stringify(r[scope][key] ?? null));
    return new Set(vals).size > 1;
  }

  function fillSelect(sel, keys, preferred) {
    const prev = sel.value;
    RB.fill(sel, ...keys.map((k) => el("option", { value: k }, k)));
    if (keys.includes(prev)) sel.value = prev;
    else if (preferred && keys.includes(preferred)) sel.value = preferred;
  }

  function defaultMetric() {
    const plain = model.metricKeys.filter((k) => !k.startsWith("sys/"));
    return plain[0] || model.metricKeys[0];
  }

  function renderParallel() {
    const sel = $("parallel-metric");
    if (!sel.options.length) fillSelect(sel, model.metricKeys, defaultMetric());
    const metric = sel.value;
    const node = $("parallel-chart");
    const runs = model.runs.filter((r) => !metric || numeric(r.metrics[metric]));
    let keys = model.paramKeys.filter((k) => varying(k, "params"));
    if (!keys.length) keys = model.paramKeys.slice(0, 8);
    if (!runs.length || (!keys.length && !metric)) {
      RB.fill(node, el("p", { class: "muted" }, "nothing to draw: no parameter or metric"));
      return;
    }
    const dims = keys.slice(0, 30).map((k) => dimension(k, runs.map((r) => r.params[k])));
    const color = metric ? runs.map((r) => r.metrics[metric]) : runs.map((_, i) => i);
    if (metric) dims.push(dimension(metric, color));
    RB.plot(node, [{ type: "parcoords", dimensions: dims, line: { color, colorscale: "Viridis", showscale: !!metric, colorbar: { title: { text: RB.plotText(metric || "") } } } }], {
      height: 460,
      margin: { l: 70, r: 70, t: 60, b: 30 },
    });
  }

  function renderScatter() {
    const sx = $("scatter-x");
    const sy = $("scatter-y");
    const xs = [...model.paramKeys.map((k) => "params." + k), ...model.metricKeys.map((k) => "metrics." + k)];
    const ys = [...model.metricKeys.map((k) => "metrics." + k), ...model.paramKeys.map((k) => "params." + k)];
    if (!sx.options.length) {
      const firstVarying = model.paramKeys.find((k) => varying(k, "params")) || model.paramKeys[0];
      fillSelect(sx, xs, firstVarying ? "params." + firstVarying : xs[0]);
      fillSelect(sy, ys, defaultMetric() ? "metrics." + defaultMetric() : ys[0]);
    }
    const node = $("scatter-chart");
    if (!sx.value || !sy.value) {
      RB.fill(node, el("p", { class: "muted" }, "no parameters or metrics to plot"));
      return;
    }
    const get = (r, k) => {
      const dot = k.indexOf(".");
      return r[k.slice(0, dot)][k.slice(dot + 1)];
    };
    const runs = model.runs.filter((r) => get(r, sx.value) !== undefined && get(r, sy.value) !== undefined);
    const xv = runs.map((r) => get(r, sx.value));
    const yv = runs.map((r) => get(r, sy.value));
    const cat = (vals) => !vals.every((v) => v === null || numeric(v));
    RB.plot(
      node,
      [
        {
          type: "scatter",
          mode: "markers",
          x: cat(xv) ? xv.map((v) => RB.plotText(RB.fmtValue(v))) : xv,
          y: cat(yv) ? yv.map((v) => RB.plotText(RB.fmtValue(v))) : yv,
          text: runs.map((r) => RB.plotText(r.name)),
          customdata: runs.map((r) => r.id),
          marker: { size: 11, color: runs.map((r) => r.color), line: { width: 1, color: RB.chartTheme().font.color } },
          hovertemplate: "%{text}<br>" + RB.plotText(sx.value, true) + "=%{x}<br>" + RB.plotText(sy.value, true) + "=%{y}<extra></extra>",
        },
      ],
      {
        height: 460,
        xaxis: { title: { text: RB.plotText(sx.value) }, type: $("scatter-logx").checked && !cat(xv) ? "log" : cat(xv) ? "category" : "linear" },
        yaxis: { title: { text: RB.plotText(sy.value) }, type: cat(yv) ? "category" : "linear" },
      }
    ).then((gd) => {
      if (!gd._rbClick) {
        gd._rbClick = true;
        gd.on("plotly_click", (ev) => {
          const id = ev.points && ev.points[0] && ev.points[0].customdata;
          if (id) window.location.href = RB.runUrl(id);
        });
      }
    });
  }

  // -- importance ----------------------------------------------------------------------------------

  const importanceCache = new Map(); // metric -> the pending or answered request

  /** The server fits a model (and loads scikit-learn on first use): asked once per metric,
   * and for the default metric as soon as the page opens, so the tab rarely waits. */
  function importanceOf(metric) {
    if (!importanceCache.has(metric)) {
      const pending = api("/api/importance", { metric, runs: model.runs.map((x) => x.id).join(",") });
      pending.catch(() => importanceCache.delete(metric)); // a failure is asked again next time
      importanceCache.set(metric, pending);
    }
    return importanceCache.get(metric);
  }

  async function renderImportance() {
    const sel = $("importance-metric");
    if (!sel.options.length) fillSelect(sel, model.metricKeys, defaultMetric());
    const node = $("importance-chart");
    const table = $("importance-table");
    RB.showError($("importance-error"), null);
    if (!sel.value) {
      RB.fill(node, el("p", { class: "muted" }, "these runs have no metric"));
      return;
    }
    const metric = sel.value;
    const started = Date.now();
    const progress = el("p", { class: "muted", id: "importance-progress" }, "computing…");
    RB.fill(node, progress);
    RB.fill(table);
    const tick = setInterval(() => {
      const s = Math.round((Date.now() - started) / 1000);
      progress.textContent = "computing… " + s + " s (fitting a random forest" + (s >= 2 ? "; the first time, the server also loads scikit-learn)" : ")");
    }, 1000);
    let rows;
    let report;
    try {
      report = await importanceOf(metric);
      rows = Array.isArray(report) ? report : report.rows || [];
    } catch (e) {
      RB.fill(node);
      RB.showError($("importance-error"), e);
      return;
    } finally {
      clearInterval(tick);
    }
    if (sel.value !== metric) return; // another metric was chosen meanwhile
    const shown = rows.slice(0, 40);
    const rev = shown.slice().reverse(); // plotly draws the first bar at the bottom
    RB.plot(
      node,
      [
        {
          type: "bar",
          orientation: "h",
          x: rev.map((r) => r.rf_importance),
          y: rev.map((r) => RB.plotText(r.param)),
          marker: { color: rev.map((r) => ((r.spearman ?? 0) < 0 ? "#d62728" : "#1f77b4")) },
          hovertemplate: "%{y}: %{x:.3f}<extra></extra>",
        },
      ],
      {
        height: Math.max(220, 40 + 28 * shown.length),
        margin: { l: 140, r: 20, t: 30, b: 40 },
        title: { text: "importance for " + RB.plotText(sel.value) + " (random forest; red: negative correlation)", font: { size: 12 } },
        xaxis: { title: { text: "rf importance" }, range: [0, 1] },
      }
    );
    const dropped = Object.entries(report.dropped || {}).map(([k, why]) => k + " (" + why + ")");
    const note = report.n_runs !== undefined ? "over " + report.n_runs + " runs with metric " + sel.value + (dropped.length ? "; left out: " + dropped.join(", ") : "") : "";
    const legend = {
      "rf importance": "the parameter's share of a random forest's fit of the metric (sums to 1; sees non-monotonic effects and interactions)",
      spearman: "rank correlation of a numeric parameter with the metric (-1..1; the sign is the direction)",
      eta: "how much a categorical parameter's value decides the metric's rank (0..1)",
      kind: "numeric or categorical",
      n: "runs that have the parameter",
    };
    RB.fill(table,
      el("caption", { class: "muted" },
        report.warning ? el("div", { class: "warning", id: "importance-warning" }, "⚠ " + report.warning) : null,
        note,
        el("div", { class: "legend", id: "importance-legend" }, Object.entries(legend).map(([k, v]) => el("div", {}, el("strong", {}, k), ": " + v)))
      ),
      el("thead", {}, el("tr", {}, ["param", "rf importance", "spearman", "eta", "kind", "n"].map((h) => el("th", { title: legend[h] || null }, h)))),
      el(
        "tbody",
        {},
        rows.map((r) =>
          el("tr", { dataset: { param: r.param } }, el("td", { class: "mono" }, r.param), el("td", { class: "num" }, RB.fmtValue(r.rf_importance)), el("td", { class: "num" }, RB.fmtValue(r.spearman)), el("td", { class: "num" }, RB.fmtValue(r.eta)), el("td", {}, r.kind), el("td", { class: "num" }, String(r.n)))
        )
      )
    );
  }

  // -- parameters table, diff -----------------------------------------------------------------------------

  function renderParams() {
    const header = ["", ...model.runs.map((r) => el("a", { href: RB.runUrl(r.id) }, el("span", { class: "swatch", style: "background:" + r.color }), r.name))];
    const rows = [];
    let constant = 0;
    const addRows = (scope, keys) => {
      for (const k of keys) {
        const vals = model.runs.map((r) => r[scope][k]);
        const differs = new Set(vals.map((v) => JSON.stringify(v ?? null))).size > 1;
        // a param with one value in every run says nothing about them: hidden until asked
        const cls = differs ? "differs" : scope === "params" && model.runs.length > 1 ? "constant-param" : "";
        if (cls === "constant-param") constant += 1;
        rows.push(el("tr", { class: cls }, el("th", { class: "mono" }, scope + "." + k), vals.map((v) => el("td", { class: typeof v === "number" ? "num" : "" }, RB.fmtValue(v)))));
      }
    };
    addRows("params", model.paramKeys);
    addRows("metrics", model.metricKeys);
    $("params-table").classList.add("hide-constant");
    RB.fill($("params-table"),
      el("label", {}, el("input", { type: "checkbox", id: "all-params", onchange: (e) => $("params-table").classList.toggle("hide-constant", !e.target.checked) }), " constant params too (" + constant + ")"),
      " ",
      el("label", {}, el("input", { type: "checkbox", id: "only-differing", onchange: (e) => $("params-table").classList.toggle("only-differing", e.target.checked) }), " only what differs"),
      el("table", { class: "grid compare-table" }, el("thead", {}, el("tr", {}, header.map((h) => el("th", {}, h)))), el("tbody", {}, rows))
    );
  }

  function renderDiff() {
    return RB.load($("diff"), "loading…", "/api/diff", { a: model.runs[0].id, b: model.runs[1].id }, RB.renderDiff).then(focusSection);
  }

  /** /compare?runs=A,B&section=data#diff (the explain page links each change so): that
   * section of the diff in view. */
  function focusSection() {
    const name = new URL(window.location.href).searchParams.get("section");
    const sec = name && Array.from(document.querySelectorAll("#diff .diff-section")).find((s) => s.dataset.section === name);
    if (!sec) return;
    sec.classList.add("focused");
    sec.scrollIntoView({ block: "start" });
  }

  // -- wiring ---------------------------------------------------------------------------------------------

  const RENDER = { curves: renderCurves, parallel: renderParallel, scatter: renderScatter, importance: renderImportance, params: renderParams, diff: renderDiff };

  function onShow(name, first) {
    if (first) RENDER[name]();
    else for (const n of document.querySelectorAll("#pane-" + name + " .js-plotly-plot")) Plotly.Plots.resize(n);
  }

  $("log-scale").addEventListener("change", (e) => {
    opts.log = e.target.checked;
    redrawCurves();
  });
  $("smoothing").addEventListener("input", (e) => {
    opts.smoothing = parseFloat(e.target.value);
    $("smoothing-value").textContent = e.target.value;
    redrawCurves();
  });
  $("series-search").addEventListener("input", (e) => {
    const q = e.target.value.trim().toLowerCase();
    for (const card of $("curves").children) card.hidden = q && !(card.dataset.key || "").toLowerCase().includes(q);
  });
  $("parallel-metric").addEventListener("change", renderParallel);
  $("scatter-x").addEventListener("change", renderScatter);
  $("scatter-y").addEventListener("change", renderScatter);
  $("scatter-logx").addEventListener("change", renderScatter);
  $("importance-metric").addEventListener("change", renderImportance);

  async function init() {
    if (!refs.length) {
      RB.showError($("error"), new Error("no runs to compare: select runs in the runs table, or open /compare?runs=A,B"));
      return;
    }
    try {
      model = normalize(await api("/api/compare", { runs: refs.join(",") }));
    } catch (e) {
      RB.showError($("error"), e);
      return;
    }
    document.title = "Compare " + model.runs.length + " runs - runbase";
    renderRunList();
    $("diff-tab").hidden = model.runs.length !== 2;
    if (model.runs.length === 2) {
      // which of the differences moved the metric: `runbase explain A B`, saved
      $("explain-link").href = RB.base + "/explain?a=" + enc(model.runs[0].id) + "&b=" + enc(model.runs[1].id);
      $("explain-link").hidden = false;
    }
    const metric = defaultMetric();
    if (metric && model.runs.length >= 4) importanceOf(metric).catch(() => {}); // shown by its tab
    RB.tabs(onShow).show(window.location.hash.slice(1) || "curves");
  }

  init();
})();
