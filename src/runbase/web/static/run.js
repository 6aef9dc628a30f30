/* runbase ui: one run. Every tab loads on first open; a running run is polled every 2 s. */
"use strict";

(() => {
  const { el, api } = RB;
  const $ = (id) => document.getElementById(id);
  const ref = RB.config.ref;
  const enc = encodeURIComponent;
  const POLL_MS = 2000;
  const MAX_LIVE_POINTS = 5000; // past this, a live chart re-fetches its downsampled series
  const OVERVIEW_CHARTS = 12; // metric charts on the overview; all of them in the Metrics tab

  let rec = null; // the run record (docs/run-record.md) + series, heartbeat_age_s, stalled
  let runPath = "/api/runs/" + enc(ref);
  let tabs = null;
  const opened = new Set();
  const chartOptions = { log: false, smoothing: 0 };
  const logState = { stream: "output", offset: 0, done: false, node: null, busy: false };
  let pollTimer = null;

  // -- header and overview ----------------------------------------------------------------

  function renderHead() {
    RB.fill($("run-title"), rec.name + " ", el("span", { class: "muted mono" }, rec.id.slice(0, 10)));
    const badges = [RB.statusBadge(rec.status)];
    if (rec.status === "running") badges.push(liveBadge());
    if (rec.code && rec.code.patch_id) badges.push(el("span", { class: "badge warn", id: "dirty-badge" }, "uncommitted changes"));
    RB.fill($("badges"), ...badges);
    document.title = rec.name + " - runbase";
    const sys = (rec.series || []).some((s) => s.key.startsWith("sys/"));
    document.querySelector('.tab[data-tab="system"]').hidden = !sys;
    document.querySelector('.tab[data-tab="notebook"]').hidden = !rec.notebook;
    const mediaTab = document.querySelector('.tab[data-tab="media"]');
    if (mediaTab) mediaTab.hidden = !media.keys.length && !media.error;
  }

  /** A running run is `live` while its heartbeat is fresh, `stalled` past the server's
   * threshold (rec.stall_after_s): its supervisor was killed, or its machine is gone. */
  function liveBadge() {
    const lost = rec.error ? " (supervisor lost)" : "";
    if (!rec.stalled) return el("span", { class: "badge live", id: "live-badge", title: "refreshing every 2 s" + lost }, "live");
    const age = rec.heartbeat_age_s;
    const text = "stalled — no heartbeat for " + (age < 120 ? Math.round(age) + " s" : RB.fmtDuration(age));
    const title =
      "no new metrics, system samples or events have reached the store for more than " + Math.round(rec.stall_after_s) + " s" +
      (rec.heartbeat_at ? " (last heartbeat " + RB.fmtTime(rec.heartbeat_at) + ")" : "") + lost;
    return el("span", { class: "badge stalled", id: "live-badge", title, role: "status" }, text);
  }

  function exitText() {
    if (rec.exit_signal) return "signal " + rec.exit_signal;
    return rec.exit_code === null || rec.exit_code === undefined ? "" : String(rec.exit_code);
  }

  function codeSummary(code) {
    if (!code) return el("span", { class: "muted" }, "no code snapshot");
    if (code.kind !== "git") return el("span", {}, "directory snapshot of " + code.root + " (" + code.files + " files)");
    return el(
      "span",
      {},
      el("span", { class: "mono", title: code.commit || "" }, (code.commit || "(no commit yet)").slice(0, 10)),
      code.branch ? " on " + code.branch : "",
      code.remote ? el("span", { class: "muted" }, "  " + code.remote) : "",
      " ",
      code.patch_id
        ? el("a", { href: "#code", class: "badge warn", onclick: () => setTimeout(() => showDiff(), 0) }, "uncommitted changes")
        : el("span", { class: "badge ok" }, "clean")
    );
  }

  function link(id, label) {
    return id ? el("a", { href: RB.runUrl(id), class: "mono" }, label || id.slice(0, 10)) : null;
  }

  /** The overview's nodes, built once: a live run's polls refill the tables and add
   * charts, they never rebuild a chart (no flicker, no layout jump, zoom kept). */
  let overview = null;

  function renderOverview() {
    if (!overview) buildOverview();
    RB.fill(overview.info, runTable());
    updateSummaries();
    RB.fill(overview.error, rec.error && rec.status !== "running" ? [el("h2", {}, "Error"), el("pre", { class: "log error-text" }, rec.error)] : null);
    const keys = seriesKeys(false);
    for (const key of keys.slice(0, OVERVIEW_CHARTS)) addChart(overview.metricGrid, key, { key, keys: [key], height: 200, compact: true });
    overview.metricGrid.hidden = !keys.length;
    RB.fill(overview.more,
      keys.length > OVERVIEW_CHARTS
        ? el("a", { href: "#metrics", id: "ov-more" }, "all " + keys.length + " metrics in the Metrics tab")
        : keys.length ? null : el("span", { class: "muted" }, "no metric series logged")
    );
    const groups = systemGroups(seriesKeys(true));
    for (const g of groups) addChart(overview.sysGrid, g.id, Object.assign({ height: 180, compact: true }, g));
    overview.sysSection.hidden = !groups.length;
  }

  function buildOverview() {
    const o = {
      info: el("div", { id: "ov-info" }),
      summaries: el("div", { id: "ov-summaries" }),
      error: el("div", { id: "ov-error" }),
      metricGrid: el("div", { class: "ov-grid", id: "ov-metric-charts" }),
      more: el("span", { class: "ov-more" }),
      sysGrid: el("div", { class: "ov-grid ov-grid-sys", id: "ov-system-charts" }),
      sysSummariesTitle: el("summary", {}),
      sysSummariesBody: el("div", {}),
    };
    // built once, so a live run's refresh keeps it open or closed as the reader left it
    o.sysSummaries = el("details", { id: "ov-sys-summaries", hidden: true }, o.sysSummariesTitle, o.sysSummariesBody);
    o.sysSection = el("section", { id: "ov-system", hidden: true }, el("h2", {}, "System ", el("a", { href: "#system", class: "ov-more" }, "all system metrics")), o.sysGrid);
    RB.fill($("pane-overview"),
      el(
        "div",
        { class: "ov-layout" },
        el("div", { class: "ov-side" }, el("h2", {}, "Run"), o.info),
        el(
          "div",
          { class: "ov-main" },
          el("section", { id: "ov-metrics" }, el("h2", {}, "Metrics ", o.more), o.metricGrid),
          o.sysSection,
          el("section", {}, el("h2", {}, "Summaries"), o.summaries, o.sysSummaries)
        )
      ),
      o.error,
      notesSection()
    );
    overview = o;
  }

  function runTable() {
    const tags = Object.entries(rec.tags || {}).filter(([k]) => k !== "overrides");
    return RB.kvTable([
      ["id", el("span", { class: "mono" }, rec.id)],
      ["status", el("span", {}, RB.statusBadge(rec.status), exitText() ? "  exit " + exitText() : "")],
      ["started", RB.fmtTime(rec.started_at)],
      ["ended", rec.ended_at ? RB.fmtTime(rec.ended_at) : ""],
      ["duration", RB.fmtDuration(rec.duration_s)],
      rec.status === "running" && rec.heartbeat_at ? ["heartbeat", el("span", { id: "ov-heartbeat" }, RB.fmtTime(rec.heartbeat_at))] : null,
      ["command", el("code", { class: "command" }, (rec.command || []).join(" "))],
      ["cwd", el("span", { class: "mono" }, rec.cwd || "")],
      ...whoRows(),
      ["mode", rec.mode],
      ["code", codeSummary(rec.code)],
      rec.sweep_id
        ? ["sweep", el("span", {}, el("a", { href: RB.base + "/sweeps/" + enc(rec.sweep_id), class: "mono", id: "sweep-link", title: "the sweep page: its trials, the best so far" }, rec.sweep_id), " ", el("a", { href: RB.base + "/?sweep=" + enc(rec.sweep_id), class: "muted" }, "(its runs)"))]
        : null,
      rec.parent_id ? ["parent", link(rec.parent_id)] : null,
      rec.reproduces ? ["reproduces", link(rec.reproduces)] : null,
      tags.length ? ["tags", tags.map(([k, v]) => el("span", { class: "tag" }, v ? k + "=" + v : k))] : null,
      rec.tags && rec.tags.overrides ? ["overrides", el("code", {}, rec.tags.overrides)] : null,
      rec.status === "running" && rec.error ? ["note", el("span", { class: "error-text" }, rec.error)] : null,
    ]);
  }

  /** The summaries: the run's own metrics, then its system ones (sys/*) folded away. */
  function updateSummaries() {
    const all = Object.entries(rec.metrics || {}).sort(([a], [b]) => a.localeCompare(b));
    const own = all.filter(([k]) => !k.startsWith("sys/"));
    const sys = all.filter(([k]) => k.startsWith("sys/"));
    RB.fill(overview.summaries, own.length ? summaryTable(own, "summaries-table") : el("p", { class: "muted" }, "no metrics"));
    overview.sysSummaries.hidden = !sys.length;
    RB.fill(overview.sysSummariesTitle, "system metrics (" + sys.length + ")");
    RB.fill(overview.sysSummariesBody, sys.length ? summaryTable(sys, "system-summaries-table") : null);
  }

  function summaryTable(metrics, id) {
    return RB.table(
      ["key", "value", "last", "min", "max", "count"],
      metrics.map(([k, m]) => [k, RB.fmtValue(m.value), RB.fmtValue(m.last), RB.fmtValue(m.min), RB.fmtValue(m.max), m.count ? String(m.count) : "summary"]),
      { class: "grid", id }
    );
  }

  /** Who ran it: locally the login name; on the team server the account that pushed the
   * run (its author), and the login name on their machine (tag host_user) when it differs. */
  function whoRows() {
    const at = rec.host ? "@" + rec.host : "";
    if (!RB.config.user) return [["user", (rec.user || "") + at]];
    const hostUser = (rec.tags || {}).host_user;
    return [
      ["author", el("span", { id: "run-author" }, rec.user || "")],
      hostUser || at ? ["host user", el("span", { id: "run-host-user", class: "mono" }, (hostUser || rec.user || "") + at)] : null,
    ];
  }

  // -- notes (team server only) ------------------------------------------------------------

  let notesNode = null; // built once: the overview redraws (live runs) keep a half-typed note

  function notesSection() {
    if (!RB.config.user) return null;
    if (notesNode) return notesNode;
    const list = el("div", { id: "notes-list", class: "notes-list" });
    const error = el("div", { id: "notes-error", class: "error", hidden: true });
    let form = null;
    if (RB.config.role === "reader") {
      form = el("p", { class: "muted", id: "notes-readonly" }, "You have read access to this project: notes need the writer role.");
    } else {
      const text = el("textarea", { id: "note-text", rows: "3", maxlength: "20000", placeholder: "Add a note about this run (plain text)" });
      const button = el("button", { type: "submit", id: "add-note" }, "Add note");
      form = el("form", { id: "note-form", class: "note-form" }, text, el("div", {}, button));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        if (!text.value.trim()) {
          RB.showError(error, new Error("a note cannot be empty"));
          return;
        }
        button.disabled = true;
        try {
          await RB.apiSend("POST", runPath + "/notes", { text: text.value });
          text.value = "";
          RB.showError(error, null);
          await loadNotes(list, error);
        } catch (err) {
          RB.showError(error, err);
          if (err.status === 403) form.hidden = true; // not allowed: no point in retrying
        } finally {
          button.disabled = false;
        }
      });
    }
    notesNode = el("section", { id: "notes", class: "notes" }, el("h2", {}, "Notes"), list, error, form);
    loadNotes(list, error);
    return notesNode;
  }

  async function loadNotes(list, error) {
    if (!list.children.length) RB.fill(list, el("p", { class: "muted" }, "loading notes…"));
    try {
      const { notes } = await api(runPath + "/notes");
      RB.fill(list, notes.length ? notes.map(renderNote) : el("p", { class: "muted", id: "no-notes" }, "no notes yet"));
    } catch (err) {
      RB.fill(list);
      RB.showError(error, err);
    }
  }

  function renderNote(n) {
    return el(
      "article",
      { class: "note", dataset: { id: n.id } },
      el("div", { class: "note-head" }, el("span", { class: "note-author" }, n.author), " ", el("span", { class: "muted" }, RB.timeCell(n.created_at))),
      el("div", { class: "note-text" }, n.text) // text, never HTML
    );
  }

  // -- parameters ------------------------------------------------------------------------

  /** A search box and what it finds: `draw(query)` gives the holder's content for the
   * lowercased query, again as one types. Returns [box, holder]. */
  function searchable(boxAttrs, holderAttrs, draw) {
    const box = el("input", Object.assign({ type: "search" }, boxAttrs));
    const holder = el("div", holderAttrs);
    const redraw = () => RB.fill(holder, draw(box.value.trim().toLowerCase()));
    box.addEventListener("input", redraw);
    redraw();
    return [box, holder];
  }

  function renderParams() {
    const [search, holder] = searchable({ placeholder: "search parameters", id: "param-search" }, {}, (q) => {
      const rows = Object.entries(rec.params || {})
        .sort(([a], [b]) => a.localeCompare(b))
        .filter(([k, v]) => !q || k.toLowerCase().includes(q) || RB.fmtValue(v).toLowerCase().includes(q))
        .map(([k, v]) => [el("span", { class: "mono" }, k), el("span", { class: "mono" }, RB.fmtValue(v)), el("span", { class: "src src-" + (rec.param_sources || {})[k] }, (rec.param_sources || {})[k] || "")]);
      return rows.length ? RB.table(["parameter", "value", "source"], rows, { class: "grid", id: "params-table" }) : el("p", { class: "muted" }, "no parameters");
    });
    RB.fill($("pane-params"),
      el("div", { class: "controls" }, search, el("span", { class: "muted" }, "source: inline (runbase.param) > papermill > parser (argparse, click, typer, fire, jsonargparse, hydra) > framework (tensorboard, lightning, ...) > argv > config file")),
      holder
    );
  }

  // -- metric charts -----------------------------------------------------------------------
  // A series is fetched once and shared by every chart showing it (the overview's and the
  // Metrics tab's); a live run's poll extends each loaded series once, then redraws them.

  const series = new Map(); // key -> {key, steps, values, lastStep, state, error, charts: Set}
  const chartsIn = new WeakMap(); // grid -> Map(chart id -> chart)
  const allCharts = new Set(); // chart: {id, node, keys, labels, height, bytes, compact}

  function seriesKeys(system) {
    return (rec.series || []).map((s) => s.key).filter((k) => k.startsWith("sys/") === system).sort();
  }

  function seriesOf(key) {
    let s = series.get(key);
    if (!s) {
      s = { key, steps: [], values: [], lastStep: null, state: null, error: null, charts: new Set() };
      series.set(key, s);
    }
    return s;
  }

  /** The overview's system charts: CPU, memory, GPU utilization and GPU memory, each
   * with the keys of capture/sysmetrics.py this run has (docs/run-record.md). */
  function systemGroups(keys) {
    const have = new Set(keys);
    const gpus = Array.from(new Set(keys.map((k) => (/^sys\/gpu(\d+)\//.exec(k) || [])[1]).filter((g) => g !== undefined))).sort((a, b) => a - b);
    const groups = [
      { id: "sys-cpu", title: "CPU %", keys: ["sys/proc_cpu_percent", "sys/cpu_percent"], labels: ["process tree (% of one core)", "machine (% of all cores)"] },
      { id: "sys-memory", title: "Memory", keys: ["sys/rss_bytes", "sys/mem_used_bytes"], labels: ["process tree (RSS)", "machine (in use)"], bytes: true },
      { id: "sys-gpu-util", title: "GPU utilization %", keys: gpus.map((g) => "sys/gpu" + g + "/util_percent"), labels: gpus.map((g) => "GPU " + g) },
      { id: "sys-gpu-memory", title: "GPU memory", keys: gpus.map((g) => "sys/gpu" + g + "/mem_used_bytes"), labels: gpus.map((g) => "GPU " + g), bytes: true },
    ];
    return groups
      .map((g) => {
        const kept = g.keys.map((k, i) => [k, g.labels[i]]).filter(([k]) => have.has(k));
        return Object.assign({}, g, { keys: kept.map(([k]) => k), labels: kept.map(([, l]) => l) });
      })
      .filter((g) => g.keys.length);
  }

  function renderChartsPane(paneId, system) {
    const pane = $(paneId);
    const grid = el("div", { class: "chart-grid", id: paneId + "-grid" });
    const log = el("input", { type: "checkbox", class: "log-scale" });
    log.checked = chartOptions.log;
    const slider = el("input", { type: "range", min: "0", max: "0.99", step: "0.01", class: "smoothing" });
    slider.value = String(chartOptions.smoothing);
    const shown = el("span", { class: "smoothing-value" }, String(chartOptions.smoothing));
    const search = el("input", { type: "search", placeholder: "filter charts" });
    log.addEventListener("change", () => {
      chartOptions.log = log.checked;
      syncControls();
      redrawAll();
    });
    slider.addEventListener("input", () => {
      chartOptions.smoothing = parseFloat(slider.value);
      syncControls();
      redrawAll();
    });
    search.addEventListener("input", () => {
      const q = search.value.trim().toLowerCase();
      for (const card of grid.children) card.hidden = q && !card.dataset.key.toLowerCase().includes(q);
    });
    RB.fill(pane,
      el("div", { class: "controls" }, el("label", {}, log, " log scale"), el("label", {}, "smoothing ", slider, " ", shown), search),
      grid
    );
    addPaneCharts(grid, seriesKeys(system));
  }

  function syncControls() {
    for (const b of document.querySelectorAll(".log-scale")) b.checked = chartOptions.log;
    for (const s of document.querySelectorAll(".smoothing")) s.value = String(chartOptions.smoothing);
    for (const s of document.querySelectorAll(".smoothing-value")) s.textContent = String(chartOptions.smoothing);
  }

  /** The Metrics and System tabs: one chart per key. */
  function addPaneCharts(grid, keys) {
    if (!keys.length && !grid.children.length) {
      grid.append(el("p", { class: "muted empty-note" }, "no metric series logged"));
      return;
    }
    for (const key of keys) {
      const note = grid.querySelector(".empty-note");
      if (note) note.remove();
      addChart(grid, key, { key, keys: [key], height: 260 });
    }
  }

  /** A chart of `spec.keys` in `grid`, once per `id`; a known id takes the spec's keys
   * (a live run's GPU appearing) and redraws. The Metrics tab's cards are
   * `.chart-card[data-key]`, the overview's `.ov-chart[data-chart]`. */
  function addChart(grid, id, spec) {
    let byId = chartsIn.get(grid);
    if (!byId) chartsIn.set(grid, (byId = new Map()));
    const known = byId.get(id);
    if (known) {
      if (known.keys.join("\n") === spec.keys.join("\n")) return;
      Object.assign(known, { keys: spec.keys, labels: spec.labels });
      if (known.visible) showChart(known);
      return;
    }
    let node;
    let card;
    if (spec.compact) {
      node = el("div", { class: "chart ov-plot" });
      card = el("div", { class: "ov-chart", dataset: { chart: id } }, el("div", { class: "chart-title" }, spec.title || spec.key), node);
    } else {
      ({ node, card } = RB.chartCard(spec.key));
    }
    grid.append(card);
    const c = Object.assign({ id, node, visible: false, labels: [] }, spec);
    byId.set(id, c);
    allCharts.add(c);
    card._chart = c;
    observer.observe(card);
  }

  const observer = RB.onceVisible((card) => {
    if (card._chart) showChart(card._chart);
  });

  function showChart(c) {
    c.visible = true;
    for (const key of c.keys) {
      const s = seriesOf(key);
      s.charts.add(c);
      if (!s.state) {
        s.state = "loading";
        loadSeries(s);
      }
    }
    if (c.keys.some((k) => settled(series.get(k)))) draw(c);
  }

  /** Fetched: its points, or the error that says why not. */
  function settled(s) {
    return !!s && (s.state === "loaded" || s.state === "error");
  }

  async function loadSeries(s) {
    try {
      const r = await api(runPath + "/series/" + enc(s.key), { points: 1000 });
      s.steps = r.steps;
      s.values = RB.numbers(r.values);
      s.lastStep = r.last_step ?? (r.steps.length ? r.steps[r.steps.length - 1] : null);
      s.state = "loaded";
      s.error = null;
    } catch (e) {
      s.state = "error";
      s.error = e.message;
    }
    for (const c of s.charts) draw(c);
  }

  async function extendSeries(s) {
    if (s.state !== "loaded" || !Array.from(s.charts).some((c) => c.node.isConnected)) return;
    if (s.steps.length > MAX_LIVE_POINTS) return loadSeries(s);
    const r = await api(runPath + "/series/" + enc(s.key), { points: 1000, since_step: s.lastStep === null ? "" : s.lastStep });
    const values = RB.numbers(r.values);
    for (let i = 0; i < r.steps.length; i++) {
      s.steps.push(r.steps[i]);
      s.values.push(values[i]);
    }
    if (r.last_step !== null && r.last_step !== undefined) s.lastStep = r.last_step;
    if (r.steps.length) for (const c of s.charts) draw(c);
  }

  function draw(c) {
    const loaded = c.keys.map((k) => series.get(k)).filter(settled);
    const failed = loaded.filter((s) => s.error);
    if (loaded.length && failed.length === loaded.length) {
      Plotly.purge(c.node);
      RB.fill(c.node, el("div", { class: "error" }, failed[0].error));
      return;
    }
    const traces = [];
    c.keys.forEach((key, i) => {
      const s = series.get(key);
      if (!s || s.state !== "loaded") return;
      const color = c.keys.length === 1 ? RB.runColor(rec.id) : RB.COLORS[i % RB.COLORS.length];
      const name = RB.plotText(c.labels[i] || key);
      const mode = s.steps.length <= 30 ? "lines+markers" : "lines";
      if (chartOptions.smoothing > 0) {
        traces.push({ x: s.steps, y: s.values, mode, name: "raw", line: { color, width: 1 }, opacity: 0.25, hoverinfo: "skip", showlegend: false });
        traces.push({ x: s.steps, y: RB.smooth(s.values, chartOptions.smoothing), mode, name, line: { color, width: 2 } });
      } else {
        traces.push({ x: s.steps, y: s.values, mode, name, line: { color, width: 2 } });
      }
    });
    const system = c.keys.every((k) => k.startsWith("sys/"));
    RB.plot(c.node, traces, {
      height: c.height,
      showlegend: c.keys.length > 1,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
      margin: { l: 55, r: 10, t: c.keys.length > 1 ? 24 : 10, b: c.compact ? 30 : 35 },
      xaxis: { title: { text: system ? "sample" : "step" } },
      // system use from zero: a flat 1 GB line is not a spike at 1.00000 GB
      yaxis: Object.assign({ type: chartOptions.log ? "log" : "linear" }, system && !chartOptions.log ? { rangemode: "tozero" } : {}, c.bytes ? { tickformat: ".3s", ticksuffix: "B" } : {}),
    });
  }

  function redrawAll() {
    for (const c of allCharts) if (c.visible && c.keys.some((k) => settled(series.get(k)))) draw(c);
  }

  // -- code --------------------------------------------------------------------------------

  function renderCode() {
    const pane = $("pane-code");
    const code = rec.code;
    if (!code) {
      RB.fill(pane, el("p", { class: "muted" }, "no code snapshot was recorded (runbase run --no-code?)"));
      return;
    }
    const diffButton = el("button", { type: "button", id: "show-diff", onclick: () => showDiff() }, code.patch_id ? "Diff against HEAD" : "Diff against HEAD (no changes)");
    const tree = el("div", { class: "file-tree", id: "file-tree" }, el("p", { class: "muted" }, "loading…"));
    const view = el("div", { class: "code-view", id: "code-view" });
    RB.fill(pane,
      el("div", { class: "controls" }, codeSummary(code), diffButton, el("span", { class: "muted" }, (code.files || 0) + " files, " + RB.fmtBytes(code.bytes || 0))),
      el("div", { class: "code-layout" }, tree, view)
    );
    loadTree(tree);
    if (code.patch_id) showDiff();
    else view.append(el("p", { class: "muted" }, "choose a file"));
  }

  function loadTree(node) {
    return RB.load(node, "loading…", runPath + "/code/tree", null, fileTree);
  }

  function fileTree(t) {
    const root = { dirs: new Map(), files: [] };
    for (const f of t.files || []) {
      const parts = f.path.split("/");
      let d = root;
      for (const p of parts.slice(0, -1)) {
        if (!d.dirs.has(p)) d.dirs.set(p, { dirs: new Map(), files: [] });
        d = d.dirs.get(p);
      }
      d.files.push(Object.assign({ name: parts[parts.length - 1] }, f));
    }
    const build = (d, depth) => {
      const items = [];
      for (const [name, sub] of Array.from(d.dirs.entries()).sort(([a], [b]) => a.localeCompare(b))) {
        const det = el("details", { open: depth < 1 }, el("summary", {}, name + "/"), build(sub, depth + 1));
        items.push(det);
      }
      for (const f of d.files.sort((a, b) => a.name.localeCompare(b.name))) {
        items.push(
          el(
            "a",
            { href: "#code", class: "file", dataset: { path: f.path }, title: f.path + " (" + RB.fmtBytes(f.size) + ")", onclick: (e) => { e.preventDefault(); showFile(f.path); } },
            f.name
          )
        );
      }
      return el("div", { class: "tree-level" }, items);
    };
    const skipped = t.skipped || [];
    return [
      build(root, 0),
      skipped.length
        ? el("details", { class: "skipped" }, el("summary", {}, skipped.length + " not snapshotted"), skipped.map((s) => el("div", { class: "muted", title: s.reason }, s.path + " (" + s.reason + ")")))
        : null,
    ];
  }

  function showFile(path) {
    for (const a of document.querySelectorAll(".file-tree .file")) a.classList.toggle("active", a.dataset.path === path);
    return RB.load($("code-view"), "loading " + path + "…", runPath + "/code/file", { path }, (f) => [
      el("div", { class: "code-head" }, el("strong", { class: "mono" }, f.path), el("span", { class: "muted" }, "  " + RB.fmtBytes(f.size))),
      f.binary ? el("p", { class: "muted" }, "binary file") : el("div", { class: "highlight-wrap", html: f.html }),
    ]);
  }

  function showDiff() {
    if (tabs && $("pane-code").hidden) tabs.show("code");
    const view = $("code-view");
    if (!view) return;
    for (const a of document.querySelectorAll(".file-tree .file")) a.classList.remove("active");
    return RB.load(view, "loading the diff…", runPath + "/code/diff", null, (d) => [
      el("div", { class: "code-head" }, el("strong", {}, "uncommitted changes"), el("span", { class: "muted" }, " against " + (d.commit ? "commit " + d.commit.slice(0, 10) : "HEAD"))),
      !d.patch
        ? el("p", { class: "muted" }, "no uncommitted changes: the committed code ran")
        : d.html
          ? el("div", { class: "highlight-wrap code-diff", id: "code-diff", html: d.html })
          : el("div", { class: "code-diff", id: "code-diff" }, RB.renderPatch(d.patch)),
    ]);
  }

  // -- data --------------------------------------------------------------------------------

  function fileTable(files, role) {
    if (!files || !files.length) return el("p", { class: "muted" }, "no " + role);
    return RB.table(
      ["path", "hash", "size", "source", "stored", ""],
      files.map((f) => [
        el("span", { class: "mono" }, f.url || f.path),
        el("span", { class: "mono", title: f.hash || "" }, RB.shortHash(f.hash)),
        RB.fmtBytes(f.size),
        f.source || "",
        f.stored ? "yes" : "no",
        [f.directory ? el("span", { class: "badge" }, "directory") : null, f.changed_during_run ? el("span", { class: "badge warn" }, "changed during run") : null],
      ]),
      { class: "grid files-" + role }
    );
  }

  function renderData() {
    RB.fill($("pane-data"), el("h2", {}, "Inputs"), fileTable(rec.inputs, "inputs"), el("h2", {}, "Outputs"), fileTable(rec.outputs, "outputs"));
  }

  // -- environment -------------------------------------------------------------------------

  function renderEnv() {
    const pane = $("pane-env");
    const env = rec.env;
    if (!env) {
      RB.fill(pane, el("p", { class: "muted" }, "no environment recorded"));
      return;
    }
    const py = env.python || {};
    const os = env.os || {};
    const cpu = env.cpu || {};
    const summary = RB.kvTable([
      env.python ? ["python", (py.implementation || "") + " " + (py.version || "") + "  " + (py.executable || "")] : ["python", "not a Python command"],
      py.venv ? ["venv", py.prefix] : null,
      ["os", [os.system, os.release, os.distro, os.machine].filter((x) => x).join(" ")],
      ["cpu", (cpu.model || "") + " (" + (cpu.cores_logical || "?") + " logical, " + (cpu.cores_physical || "?") + " physical cores)"],
      ["memory", RB.fmtBytes(env.memory_bytes)],
      ["gpus", (env.gpus || []).length ? (env.gpus || []).map((g) => g.index + ": " + g.name + " (" + RB.fmtBytes(g.memory_total_bytes) + ", driver " + g.driver + ", CUDA " + g.cuda + ")").join("; ") : "none"],
      ["container", env.container ? env.container.type + (env.container.image ? " " + env.container.image : "") : "none"],
    ]);
    const [pkgSearch, pkgHolder] = searchable({ placeholder: "search " + (env.packages || []).length + " packages", id: "package-search" }, { id: "packages" }, (q) => {
      const rows = (env.packages || [])
        .filter((p) => !q || p.name.toLowerCase().includes(q) || String(p.version).includes(q))
        .sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()))
        .map((p) => [p.name, p.version, [p.editable ? "editable " : "", p.vcs ? JSON.stringify(p.vcs) + " " : "", p.url || ""].join("")]);
      return RB.table(["package", "version", "source"], rows, { class: "grid packages" });
    });
    const [varSearch, varHolder] = searchable({ placeholder: "search environment variables" }, {}, (q) => {
      const rows = Object.entries(env.vars || {})
        .filter(([k, v]) => !q || k.toLowerCase().includes(q) || String(v).toLowerCase().includes(q))
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => [el("span", { class: "mono" }, k), el("span", { class: "mono wrap" }, String(v))]);
      return RB.table(["variable", "value"], rows);
    });
    RB.fill(pane,
      summary,
      el("h2", {}, "Packages"),
      el("div", { class: "controls" }, pkgSearch),
      pkgHolder,
      el("details", {}, el("summary", {}, "Environment variables (secrets redacted)"), el("div", { class: "controls" }, varSearch), varHolder)
    );
  }

  // -- notebook ----------------------------------------------------------------------------

  /** The cells the run executed, in order: In [n], timing, outcome, source as text. */
  function renderNotebook() {
    return RB.load($("pane-notebook"), "loading the cells…", runPath + "/notebook", null, (nb) => {
      const head = nb.notebook
        ? el(
            "p",
            { class: "muted" },
            el("span", { class: "mono" }, nb.notebook.path || "(notebook)"),
            " · " + nb.cells.length + " cell" + (nb.cells.length === 1 ? "" : "s") + " executed",
            nb.truncated ? " (the first " + nb.cells.length + " shown)" : ""
          )
        : el("p", { class: "muted" }, "this run did not run in a notebook");
      const cells = nb.cells.map((c) =>
        el(
          "div",
          { class: "nb-cell" + (c.success === false ? " failed" : "") },
          el(
            "div",
            { class: "nb-head" },
            el("span", { class: "mono nb-count" }, "In [" + (c.execution_count === null || c.execution_count === undefined ? " " : c.execution_count) + "]"),
            el("span", { class: "muted" }, c.duration_s === null || c.duration_s === undefined ? "" : RB.fmtDuration(c.duration_s)),
            c.success === false ? el("span", { class: "badge warn" }, "error") : c.success === null ? el("span", { class: "badge" }, "not finished") : null
          ),
          el("pre", { class: "nb-source mono" }, c.source || ""),
          c.error ? el("pre", { class: "nb-error mono" }, c.error) : null
        )
      );
      return [head, ...cells];
    });
  }

  // -- logs --------------------------------------------------------------------------------

  function renderLogs() {
    const pane = $("pane-logs");
    const stream = el("select", { id: "log-stream" }, el("option", { value: "output" }, "output (stdout + stderr)"), el("option", { value: "stderr" }, "stderr only"));
    stream.value = logState.stream;
    const follow = el("input", { type: "checkbox", id: "log-follow" });
    follow.checked = true;
    const pre = el("pre", { class: "log", id: "log" });
    const more = el("button", { type: "button", id: "log-more", hidden: true }, "load more");
    stream.addEventListener("change", () => {
      logState.stream = stream.value;
      logState.offset = 0;
      logState.done = false;
      pre.textContent = "";
      fetchLogs();
    });
    more.addEventListener("click", () => fetchLogs());
    RB.fill(pane, el("div", { class: "controls" }, stream, el("label", {}, follow, " follow")), pre, more);
    logState.node = pre;
    logState.more = more;
    logState.follow = follow;
    fetchLogs();
  }

  async function fetchLogs() {
    if (logState.busy || !logState.node) return;
    logState.busy = true;
    try {
      const stream = logState.stream;
      const r = await api(runPath + "/logs", { stream, offset: logState.offset });
      if (stream !== logState.stream) return;
      if (r.text) logState.node.append(r.text);
      const advanced = r.next_offset > logState.offset;
      logState.offset = r.next_offset;
      logState.done = r.done;
      logState.more.hidden = r.done || rec.status === "running" || !advanced;
      if (r.done && !logState.node.textContent) logState.node.append(el("span", { class: "muted" }, "(no output)"));
      if (logState.follow.checked && rec.status === "running") logState.node.scrollTop = logState.node.scrollHeight;
    } catch (e) {
      logState.node.append(el("span", { class: "error" }, e.message));
    } finally {
      logState.busy = false;
    }
  }

  // -- lineage -----------------------------------------------------------------------------

  function renderLineage() {
    const pane = $("pane-lineage");
    const depth = el("select", { id: "lineage-depth" }, [1, 2, 3, 5, 10].map((d) => el("option", { value: String(d) }, String(d))));
    depth.value = "3";
    const holder = el("div", { class: "lineage", id: "lineage" });
    depth.addEventListener("change", () => loadLineage(holder, depth.value));
    RB.fill(pane,
      el("div", { class: "controls" }, el("label", {}, "depth ", depth), el("span", { class: "muted" }, "files → runs → files, matched by content hash; click a run to open it")),
      holder
    );
    loadLineage(holder, depth.value);
  }

  function loadLineage(holder, depth) {
    return RB.load(holder, "loading…", runPath + "/lineage", { depth }, lineageSvg);
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) n.setAttribute(k, v);
    for (const c of children) if (c) n.append(c);
    return n;
  }

  function nodeRunId(n) {
    return n.run || n.run_id || (String(n.id).startsWith("run:") ? String(n.id).slice(4) : n.id);
  }

  /** A layered drawing: each node one column right of its furthest predecessor. */
  function lineageSvg(g) {
    const nodes = g.nodes || [];
    const edges = (g.edges || []).filter((e) => e.from !== e.to);
    if (nodes.length <= 1 && !edges.length) {
      const p = el("p", { class: "muted" }, "no lineage: this run read no file another run wrote, and wrote nothing");
      return p;
    }
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const preds = new Map(nodes.map((n) => [n.id, []]));
    for (const e of edges) if (preds.has(e.to) && byId.has(e.from)) preds.get(e.to).push(e.from);
    const layer = new Map(nodes.map((n) => [n.id, 0]));
    for (let round = 0; round < nodes.length; round++) {
      let changed = false;
      for (const e of edges) {
        if (!layer.has(e.from) || !layer.has(e.to)) continue;
        const want = layer.get(e.from) + 1;
        if (want > layer.get(e.to) && want < nodes.length + 1) {
          layer.set(e.to, want);
          changed = true;
        }
      }
      if (!changed) break;
    }
    const columns = [];
    for (const n of nodes) {
      const l = layer.get(n.id);
      (columns[l] = columns[l] || []).push(n);
    }
    const pos = new Map();
    const W = 190;
    const H = 44;
    const GX = 60;
    const GY = 22;
    columns.forEach((col, i) => {
      if (i > 0) {
        // order by the mean position of predecessors: fewer crossings
        const mean = (n) => {
          const ps = preds.get(n.id).filter((p) => pos.has(p));
          return ps.length ? ps.reduce((s, p) => s + pos.get(p).y, 0) / ps.length : 0;
        };
        col.sort((a, b) => mean(a) - mean(b));
      }
      col.forEach((n, j) => pos.set(n.id, { x: 10 + i * (W + GX), y: 10 + j * (H + GY) }));
    });
    const width = 20 + columns.length * (W + GX) - GX;
    const height = 20 + Math.max(...columns.map((c) => c.length)) * (H + GY) - GY;
    const root = svg("svg", { width, height, viewBox: "0 0 " + width + " " + height, class: "lineage-svg" });
    root.append(
      svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" })))
    );
    for (const e of edges) {
      const a = pos.get(e.from);
      const b = pos.get(e.to);
      if (!a || !b) continue;
      const x1 = a.x + W;
      const y1 = a.y + H / 2;
      const x2 = b.x;
      const y2 = b.y + H / 2;
      const mx = (x1 + x2) / 2;
      root.append(svg("path", { d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`, class: "edge edge-" + (e.kind || ""), "marker-end": "url(#arrow)" }));
    }
    for (const n of nodes) {
      const p = pos.get(n.id);
      const isRun = n.kind === "run" || n.type === "run";
      const current = isRun && rec && nodeRunId(n) === rec.id;
      const label = n.label || n.name || n.path || n.id;
      const sub = isRun ? (n.status || "") + (n.name && n.label !== n.name ? "" : "") : RB.shortHash(n.hash) + (n.size !== undefined && n.size !== null ? " · " + RB.fmtBytes(n.size) : "");
      const title = svg("title");
      title.textContent = isRun ? "run " + nodeRunId(n) : (n.path || label) + (n.hash ? "\n" + n.hash : "");
      const box = svg(
        "g",
        { class: "node " + (isRun ? "node-run" : "node-file") + (current ? " current" : ""), transform: `translate(${p.x},${p.y})`, "data-id": n.id },
        title,
        svg("rect", { width: W, height: H, rx: isRun ? 8 : 2 }),
        svg("text", { x: 10, y: 18, class: "label" }, document.createTextNode(clip(String(label), 28))),
        svg("text", { x: 10, y: 34, class: "sub" }, document.createTextNode(clip(String(sub), 32)))
      );
      if (isRun && !current) {
        const a = svg("a", { href: RB.runUrl(nodeRunId(n)), class: "node-link" }, box);
        root.append(a);
      } else root.append(box);
    }
    return el("div", { class: "lineage-scroll" }, root);
  }

  function clip(s, n) {
    return s.length > n ? "…" + s.slice(s.length - n + 1) : s;
  }

  // -- media -------------------------------------------------------------------------------
  // Images and tables the run logged (runbase.log_image / log_table, docs/api.md "Media"):
  // per image key a step slider over its images, per table key a sortable table. What the
  // store says is checked before use: an image too large to show is named, not loaded.

  const MAX_IMAGE_BYTES = 16 * 1024 * 1024; // as runbase.log_image's own limits
  const MAX_IMAGE_PIXELS = 50e6;
  const TABLE_ROWS_SHOWN = 1000; // rows drawn at first; "show all" draws the rest
  const media = { keys: [], error: null, sections: new Map() }; // sections: kind + key -> its state

  function mediaId(k) {
    return k.kind + "\u0000" + k.key;
  }

  async function loadMediaKeys() {
    try {
      const r = await api(runPath + "/media");
      media.keys = Array.isArray(r && r.keys) ? r.keys.filter((k) => k && (k.kind === "image" || k.kind === "table") && typeof k.key === "string") : [];
      media.error = null;
    } catch (e) {
      media.keys = [];
      media.error = e.status === 404 ? null : e.message; // 404: no media API (an older server)
    }
  }

  function renderMedia() {
    const pane = $("pane-media");
    if (!pane.querySelector("#media-sections")) {
      RB.fill(pane, el("div", { id: "media-error", class: "error", hidden: true }), el("div", { id: "media-sections", class: "media-sections" }));
    }
    RB.showError($("media-error"), media.error ? new Error(media.error) : null);
    const holder = $("media-sections");
    const order = media.keys.slice().sort((a, b) => (a.kind === b.kind ? a.key.localeCompare(b.key) : a.kind === "image" ? -1 : 1));
    if (!order.length && !media.error) RB.fill(holder, el("p", { class: "muted" }, "this run logged no images or tables"));
    for (const k of order) {
      let sec = media.sections.get(mediaId(k));
      if (!sec) {
        holder.querySelector(":scope > p.muted")?.remove();
        sec = { info: k, node: el("section", { class: "media-section", dataset: { key: k.key, kind: k.kind } }) };
        media.sections.set(mediaId(k), sec);
        holder.append(sec.node);
        (k.kind === "image" ? openImages : openTable)(sec);
      } else if (sec.info.count !== k.count || String(sec.info.steps) !== String(k.steps)) {
        sec.info = k; // a live run logged more: fetch again, the slider follows if it was at the end
        (k.kind === "image" ? refreshImages : refreshTable)(sec);
      }
    }
  }

  function mediaHead(k, ...extra) {
    const count = Number.isInteger(k.count) ? k.count : 0;
    const n = count + " " + (k.kind === "image" ? "image" : "table") + (count === 1 ? "" : "s");
    return el("h3", { class: "media-title" }, el("span", { class: "mono" }, k.key), " ", el("span", { class: "muted" }, n), ...extra);
  }

  // images: one slider over the key's steps, the images of the chosen step

  function openImages(sec) {
    const k = sec.info;
    // disabled until the key's items come: then one position per step
    sec.slider = el("input", { type: "range", class: "media-slider", min: "0", max: "0", step: "1", value: "0", disabled: true, dataset: { key: k.key }, "aria-label": "step of " + k.key });
    sec.stepLabel = el("span", { class: "media-step mono", "aria-live": "polite" });
    sec.images = el("div", { class: "media-images" });
    sec.message = el("div", { class: "media-message", hidden: true });
    sec.slider.addEventListener("input", () => showStep(sec));
    RB.fill(sec.node, mediaHead(k), el("div", { class: "controls" }, sec.slider, sec.stepLabel), sec.message, sec.images);
    refreshImages(sec);
  }

  async function refreshImages(sec) {
    const wasLast = !sec.steps || Number(sec.slider.value) === sec.steps.length - 1;
    const seq = (sec.seq = (sec.seq || 0) + 1); // a slower earlier answer must not win
    try {
      const r = await api(runPath + "/media", { kind: "image", key: sec.info.key });
      if (seq !== sec.seq) return;
      const byStep = new Map();
      for (const it of Array.isArray(r.items) ? r.items : []) {
        if (!it || typeof it.oid !== "string" || !RB.mediaPath(it) || !Number.isInteger(it.step)) continue;
        if (!byStep.has(it.step)) byStep.set(it.step, []);
        byStep.get(it.step).push(it);
      }
      sec.byStep = byStep;
      sec.steps = Array.from(byStep.keys()).sort((a, b) => a - b);
      for (const list of byStep.values()) list.sort((a, b) => (a.idx || 0) - (b.idx || 0));
    } catch (e) {
      if (seq === sec.seq) mediaMessage(sec, e.message);
      return;
    }
    mediaMessage(sec, sec.steps.length ? null : "no images");
    const keep = Number(sec.slider.value);
    sec.slider.max = String(Math.max(0, sec.steps.length - 1));
    sec.slider.disabled = sec.steps.length < 2;
    sec.slider.value = String(wasLast ? sec.steps.length - 1 : Math.min(keep, sec.steps.length - 1));
    showStep(sec);
  }

  function mediaMessage(sec, text) {
    sec.message.hidden = !text;
    sec.message.className = "media-message" + (text && text !== "no images" ? " error" : " muted");
    sec.message.textContent = text || "";
  }

  function showStep(sec) {
    const i = Number(sec.slider.value);
    const step = sec.steps[i];
    if (step === undefined) {
      RB.fill(sec.images);
      sec.stepLabel.textContent = "";
      return;
    }
    sec.stepLabel.textContent = "step " + step + "  (" + (i + 1) + " of " + sec.steps.length + ")";
    sec.slider.setAttribute("aria-valuetext", "step " + step);
    RB.fill(sec.images, sec.byStep.get(step).map(imageFigure));
  }

  function imageFigure(it) {
    const w = Number.isInteger(it.width) && it.width > 0 ? it.width : null;
    const h = Number.isInteger(it.height) && it.height > 0 ? it.height : null;
    const caption = [typeof it.caption === "string" ? it.caption : "", it.idx ? "#" + it.idx : ""].filter((x) => x).join("  ");
    const fig = el("figure", { class: "media-figure", dataset: { oid: it.oid, step: String(it.step), idx: String(it.idx || 0) } });
    if ((w && h && w * h > MAX_IMAGE_PIXELS) || (typeof it.size === "number" && it.size > MAX_IMAGE_BYTES)) {
      return RB.fill(fig, el("div", { class: "media-error" }, "image too large to show (" + (w && h ? w + "×" + h + " px, " : "") + RB.fmtBytes(it.size) + ")"));
    }
    const img = el("img", { class: "media-image", src: RB.base + RB.mediaPath(it), loading: "lazy", decoding: "async", alt: caption || it.key + " at step " + it.step, width: w, height: h });
    const small = w && h && Math.max(w, h) < 96;
    if (small) {
      const k = Math.max(1, Math.floor(128 / Math.max(w, h)));
      img.style.width = w * k + "px";
      img.style.height = h * k + "px";
      img.classList.add("pixelated"); // a 28x28 digit stays readable, not blurred
    }
    img.addEventListener("error", () => imageFailed(fig, it));
    return RB.fill(fig, img, el("figcaption", { class: "media-caption" }, caption || (w && h ? w + "×" + h : "")));
  }

  /** The image did not load: ask the API why (the 404's detail: the object is missing
   * from the store, the run was deleted) and say so where the image was. */
  async function imageFailed(fig, it) {
    let why = "the image could not be loaded";
    try {
      await api(RB.mediaPath(it));
      why += " (it is not an image the browser can show)";
    } catch (e) {
      why += ": " + e.message;
    }
    RB.fill(fig, el("div", { class: "media-error" }, why));
  }

  // tables: the logged table of one step, sortable by a click on a column's header

  function openTable(sec) {
    const k = sec.info;
    sec.select = el("select", { class: "media-table-step", dataset: { key: k.key }, "aria-label": "step of " + k.key });
    sec.select.addEventListener("change", () => loadTable(sec));
    sec.holder = el("div", { class: "media-table-holder" });
    RB.fill(sec.node, mediaHead(k), el("div", { class: "controls" }, el("label", {}, "step ", sec.select)), sec.holder);
    refreshTable(sec);
  }

  function refreshTable(sec) {
    const steps = (Array.isArray(sec.info.steps) ? sec.info.steps : []).filter(Number.isInteger);
    const wasLast = !sec.select.options.length || sec.select.selectedIndex === sec.select.options.length - 1;
    const keep = sec.select.value;
    RB.fill(sec.select, steps.map((s) => el("option", { value: String(s) }, String(s))));
    sec.select.value = wasLast || !steps.includes(Number(keep)) ? String(steps[steps.length - 1] ?? "") : keep;
    sec.select.disabled = steps.length < 2;
    loadTable(sec);
  }

  async function loadTable(sec) {
    const seq = (sec.seq = (sec.seq || 0) + 1); // the step chosen last wins, not the slowest answer
    if (!sec.holder.children.length) RB.fill(sec.holder, el("p", { class: "muted" }, "loading the table…"));
    let view;
    try {
      view = tableView(sec, await api(runPath + "/media/table", { key: sec.info.key, step: sec.select.value }));
    } catch (e) {
      view = el("div", { class: "error" }, e.message);
    }
    if (seq === sec.seq) RB.fill(sec.holder, view);
  }

  function tableView(sec, t) {
    const columns = (Array.isArray(t.columns) ? t.columns : []).map((c) => String(c));
    const rows = (Array.isArray(t.rows) ? t.rows : []).filter(Array.isArray);
    const total = Number.isInteger(t.total_rows) ? t.total_rows : rows.length;
    const note = el(
      "p",
      { class: "muted media-table-note" },
      total + " row" + (total === 1 ? "" : "s") + " × " + columns.length + " column" + (columns.length === 1 ? "" : "s"),
      rows.length < total ? " (the first " + rows.length + " shown)" : "",
      t.truncated ? " · truncated when logged" : ""
    );
    const state = { col: null, dir: 1, all: false };
    const table = el("table", { class: "grid media-table", dataset: { key: sec.info.key } });
    const more = el("button", { type: "button", class: "media-table-more", hidden: true }, "show all " + rows.length + " rows");
    let order = rows.map((_, i) => i);
    const draw = () => {
      const ths = columns.map((c, i) =>
        el("th", { dataset: { col: String(i) }, "aria-sort": state.col === i ? (state.dir > 0 ? "ascending" : "descending") : "none" },
          el("button", { type: "button", class: "media-sort" }, c, state.col === i ? (state.dir > 0 ? " ▲" : " ▼") : ""))
      );
      for (const th of ths) th.addEventListener("click", () => sortBy(Number(th.dataset.col)));
      const shown = state.all ? order : order.slice(0, TABLE_ROWS_SHOWN);
      RB.fill(table,
        el("thead", {}, el("tr", {}, ths)),
        el("tbody", {}, shown.map((r) => el("tr", {}, columns.map((_, j) => el("td", {}, cellText(rows[r][j]))))))
      );
      more.hidden = state.all || order.length <= TABLE_ROWS_SHOWN;
    };
    const sortBy = (col) => {
      state.dir = state.col === col ? -state.dir : 1;
      state.col = col;
      order = rows.map((_, i) => i).sort((a, b) => compareCells(rows[a][col], rows[b][col], state.dir) || a - b);
      draw();
    };
    more.addEventListener("click", () => {
      state.all = true;
      draw();
    });
    draw();
    return [note, el("div", { class: "media-table-scroll" }, table), more];
  }

  function cellText(v) {
    return typeof v === "number" || typeof v === "string" ? RB.fmtValue(v) : v === null || v === undefined ? "" : JSON.stringify(v);
  }

  /** Numbers as numbers, then strings (natural order: "x2" before "x10"), then the rest;
   * empty cells last whichever the direction. */
  function compareCells(a, b, dir) {
    const rank = (v) => (v === null || v === undefined || v === "" ? 3 : typeof v === "number" ? 0 : typeof v === "string" ? 1 : 2);
    const ra = rank(a);
    const rb = rank(b);
    if (ra === 3 || rb === 3) return ra - rb;
    if (ra !== rb) return (ra - rb) * dir;
    if (ra === 0) return (a - b) * dir;
    const sa = ra === 1 ? a : JSON.stringify(a);
    const sb = rb === 1 ? b : JSON.stringify(b);
    return sa.localeCompare(sb, undefined, { numeric: true }) * dir;
  }

  // -- tabs, polling -----------------------------------------------------------------------

  const RENDER = {
    overview: renderOverview,
    params: renderParams,
    metrics: () => renderChartsPane("pane-metrics", false),
    system: () => renderChartsPane("pane-system", true),
    media: renderMedia,
    code: renderCode,
    data: renderData,
    env: renderEnv,
    notebook: renderNotebook,
    logs: renderLogs,
    lineage: renderLineage,
  };

  function onShow(name, first) {
    if (first) {
      opened.add(name);
      RENDER[name]();
    }
    // a chart drawn while its tab was hidden has no width: fit it now
    for (const node of $("pane-" + name).querySelectorAll(".js-plotly-plot")) Plotly.Plots.resize(node);
  }

  async function poll() {
    try {
      const [r] = await Promise.all([api(runPath), loadMediaKeys()]);
      rec = r;
      renderHead();
      if (opened.has("overview")) renderOverview();
      if (opened.has("media")) renderMedia();
      const grids = [
        ["pane-metrics-grid", false],
        ["pane-system-grid", true],
      ];
      for (const [id, system] of grids) if ($(id)) addPaneCharts($(id), seriesKeys(system));
      await Promise.all(Array.from(series.values()).map((s) => extendSeries(s).catch(() => null)));
      if (opened.has("logs")) await fetchLogs();
    } catch (e) {
      RB.showError($("error"), e);
    }
    if (rec.status === "running") pollTimer = setTimeout(poll, POLL_MS);
    else {
      if (opened.has("data")) renderData();
      if (opened.has("params")) renderParams();
    }
  }

  async function init() {
    const mediaKeys = loadMediaKeys(); // at once: whether the Media tab shows
    try {
      rec = await api(runPath);
    } catch (e) {
      RB.showError($("error"), e);
      $("run-title").textContent = "run " + ref;
      return;
    }
    await mediaKeys;
    runPath = "/api/runs/" + enc(rec.id);
    renderHead();
    tabs = RB.tabs(onShow);
    tabs.show(window.location.hash.slice(1) || "overview");
    if (rec.status === "running") pollTimer = setTimeout(poll, POLL_MS);
  }

  init();
})();
