/* runbase ui: one run. Every tab loads on first open; a running run is polled every 2 s. */
"use strict";

(() => {
  const { el, api } = RB;
  const $ = (id) => document.getElementById(id);
  const ref = RB.config.ref;
  const enc = encodeURIComponent;
  const POLL_MS = 2000;
  const MAX_LIVE_POINTS = 5000; // past this, a live chart re-fetches its downsampled series

  let rec = null; // the run record (docs/run-record.md) + series: [{key, count}]
  let runPath = "/api/runs/" + enc(ref);
  let tabs = null;
  const opened = new Set();
  const charts = new Map(); // key -> {node, steps, values, lastStep, loaded}
  const chartOptions = { log: false, smoothing: 0 };
  const logState = { stream: "output", offset: 0, done: false, node: null, busy: false };
  let pollTimer = null;

  // -- header and overview ----------------------------------------------------------------

  function renderHead() {
    RB.fill($("run-title"), rec.name + " ", el("span", { class: "muted mono" }, rec.id.slice(0, 10)));
    const badges = [RB.statusBadge(rec.status)];
    if (rec.status === "running") badges.push(el("span", { class: "badge live", title: "refreshing every 2 s" }, "live"));
    if (rec.code && rec.code.patch_id) badges.push(el("span", { class: "badge warn", id: "dirty-badge" }, "uncommitted changes"));
    RB.fill($("badges"), ...badges);
    document.title = rec.name + " - runbase";
    const sys = (rec.series || []).some((s) => s.key.startsWith("sys/"));
    document.querySelector('.tab[data-tab="system"]').hidden = !sys;
    document.querySelector('.tab[data-tab="notebook"]').hidden = !rec.notebook;
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

  function renderOverview() {
    const pane = $("pane-overview");
    const tags = Object.entries(rec.tags || {}).filter(([k]) => k !== "overrides");
    const metrics = Object.entries(rec.metrics || {}).sort(([a], [b]) => a.localeCompare(b));
    RB.fill(pane,
      el(
        "div",
        { class: "cols" },
        el(
          "div",
          {},
          el("h2", {}, "Run"),
          RB.kvTable([
            ["id", el("span", { class: "mono" }, rec.id)],
            ["status", el("span", {}, RB.statusBadge(rec.status), exitText() ? "  exit " + exitText() : "")],
            ["started", RB.fmtTime(rec.started_at)],
            ["ended", rec.ended_at ? RB.fmtTime(rec.ended_at) : ""],
            ["duration", RB.fmtDuration(rec.duration_s)],
            ["command", el("code", { class: "command" }, (rec.command || []).join(" "))],
            ["cwd", el("span", { class: "mono" }, rec.cwd || "")],
            ...whoRows(),
            ["mode", rec.mode],
            ["code", codeSummary(rec.code)],
            rec.sweep_id ? ["sweep", el("a", { href: RB.base + "/?sweep=" + enc(rec.sweep_id), class: "mono" }, rec.sweep_id)] : null,
            rec.parent_id ? ["parent", link(rec.parent_id)] : null,
            rec.reproduces ? ["reproduces", link(rec.reproduces)] : null,
            tags.length ? ["tags", tags.map(([k, v]) => el("span", { class: "tag" }, v ? k + "=" + v : k))] : null,
            rec.tags && rec.tags.overrides ? ["overrides", el("code", {}, rec.tags.overrides)] : null,
          ])
        ),
        el(
          "div",
          {},
          el("h2", {}, "Metrics"),
          metrics.length
            ? RB.table(
                ["key", "value", "last", "min", "max", "count"],
                metrics.map(([k, m]) => [k, RB.fmtValue(m.value), RB.fmtValue(m.last), RB.fmtValue(m.min), RB.fmtValue(m.max), m.count ? String(m.count) : "summary"])
              )
            : el("p", { class: "muted" }, "no metrics")
        )
      ),
      rec.error ? el("div", {}, el("h2", {}, "Error"), el("pre", { class: "log error-text" }, rec.error)) : null,
      notesSection()
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

  function seriesKeys(system) {
    return (rec.series || []).map((s) => s.key).filter((k) => k.startsWith("sys/") === system).sort();
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
    addCharts(grid, seriesKeys(system));
  }

  function syncControls() {
    for (const b of document.querySelectorAll(".log-scale")) b.checked = chartOptions.log;
    for (const s of document.querySelectorAll(".smoothing")) s.value = String(chartOptions.smoothing);
    for (const s of document.querySelectorAll(".smoothing-value")) s.textContent = String(chartOptions.smoothing);
  }

  function addCharts(grid, keys) {
    if (!keys.length && !grid.children.length) {
      grid.append(el("p", { class: "muted empty-note" }, "no metric series logged"));
      return;
    }
    for (const key of keys) {
      if (charts.has(key)) continue;
      const note = grid.querySelector(".empty-note");
      if (note) note.remove();
      const { node, card } = RB.chartCard(key);
      grid.append(card);
      const c = { key, node, steps: [], values: [], lastStep: null, loaded: false, visible: false };
      charts.set(key, c);
      observer.observe(card);
    }
  }

  const observer = RB.onceVisible((card) => {
    const c = charts.get(card.dataset.key);
    if (c && !c.loaded) loadSeries(c);
  });

  async function loadSeries(c) {
    c.loaded = true;
    try {
      const s = await api(runPath + "/series/" + enc(c.key), { points: 1000 });
      c.steps = s.steps;
      c.values = RB.numbers(s.values);
      c.lastStep = s.last_step ?? (s.steps.length ? s.steps[s.steps.length - 1] : null);
      draw(c);
    } catch (e) {
      RB.fill(c.node, el("div", { class: "error" }, e.message));
    }
  }

  async function extendSeries(c) {
    if (!c.loaded || !c.node.isConnected) return;
    if (c.steps.length > MAX_LIVE_POINTS) return loadSeries(c);
    const s = await api(runPath + "/series/" + enc(c.key), { points: 1000, since_step: c.lastStep === null ? "" : c.lastStep });
    const values = RB.numbers(s.values);
    for (let i = 0; i < s.steps.length; i++) {
      c.steps.push(s.steps[i]);
      c.values.push(values[i]);
    }
    if (s.last_step !== null && s.last_step !== undefined) c.lastStep = s.last_step;
    if (s.steps.length) draw(c);
  }

  function draw(c) {
    const traces = [];
    const color = RB.COLORS[0];
    const mode = c.steps.length <= 30 ? "lines+markers" : "lines";
    if (chartOptions.smoothing > 0) {
      traces.push({ x: c.steps, y: c.values, mode, name: "raw", line: { color, width: 1 }, opacity: 0.25, hoverinfo: "skip", showlegend: false });
      traces.push({ x: c.steps, y: RB.smooth(c.values, chartOptions.smoothing), mode, name: c.key, line: { color, width: 2 } });
    } else {
      traces.push({ x: c.steps, y: c.values, mode, name: c.key, line: { color, width: 2 } });
    }
    RB.plot(c.node, traces, {
      height: 260,
      showlegend: false,
      margin: { l: 55, r: 10, t: 10, b: 35 },
      xaxis: { title: { text: "step" } },
      yaxis: { type: chartOptions.log ? "log" : "linear" },
    });
  }

  function redrawAll() {
    for (const c of charts.values()) if (c.loaded && c.steps) draw(c);
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

  // -- tabs, polling -----------------------------------------------------------------------

  const RENDER = {
    overview: renderOverview,
    params: renderParams,
    metrics: () => renderChartsPane("pane-metrics", false),
    system: () => renderChartsPane("pane-system", true),
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
    if (name === "metrics" || name === "system") {
      for (const c of charts.values()) if (c.loaded && c.node.isConnected) Plotly.Plots.resize(c.node);
    }
  }

  async function poll() {
    try {
      rec = Object.assign(await api(runPath), {});
      renderHead();
      if (opened.has("overview")) renderOverview();
      const grids = [
        ["pane-metrics-grid", false],
        ["pane-system-grid", true],
      ];
      for (const [id, system] of grids) if ($(id)) addCharts($(id), seriesKeys(system));
      await Promise.all(Array.from(charts.values()).map((c) => extendSeries(c).catch(() => null)));
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
    try {
      rec = await api(runPath);
    } catch (e) {
      RB.showError($("error"), e);
      $("run-title").textContent = "run " + ref;
      return;
    }
    runPath = "/api/runs/" + enc(rec.id);
    renderHead();
    tabs = RB.tabs(onShow);
    tabs.show(window.location.hash.slice(1) || "overview");
    if (rec.status === "running") pollTimer = setTimeout(poll, POLL_MS);
  }

  init();
})();
