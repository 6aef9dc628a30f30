/* runbase ui: the chart workspace of the runs page (docs/api.md, GET /api/panel).
 *
 * RBWorkspace.create(node, {onHoverRun(id|null), onChange()}) draws panels over the runs
 * the table's filter and sort select: line charts of metrics (one trace per run, or a mean
 * and a band per group), scatter, parallel coordinates, parameter importance, a bar of a
 * summary metric, images. The table drives it (setQuery, setHidden, highlight); saved
 * views read and set its `chart` and `panels` (getState, setState: the view spec's keys,
 * nothing more, so a saved view round-trips). The charts load from the first setQuery
 * on; a setState and a setQuery in a row make one request. */
"use strict";

const RBWorkspace = (() => {
  const { el } = RB;
  const enc = encodeURIComponent;

  const TYPES = ["line", "scatter", "parallel", "importance", "bar", "media"];
  const TYPE_NAMES = {
    line: "Line: a metric over steps or time",
    scatter: "Scatter: a param or metric vs a metric",
    parallel: "Parallel coordinates",
    importance: "Parameter importance",
    bar: "Bar: a summary metric per run",
    media: "Media: images at a step",
  };
  const X_MODES = [["step", "step"], ["time", "wall time"], ["relative", "relative time"]];
  const BANDS = [["minmax", "min–max"], ["sd", "± sd"]];
  const RUN_COUNTS = [10, 25, 50, 100, 250, 500];
  const DEFAULT_CHART = { x: "step", log: false, smoothing: 0, clip: false, band: "minmax", runs: 100, group_by: "" };
  const POINTS = 200; // buckets per series the server downsamples to
  // Above this many points in a chart, WebGL (scattergl). Lines of 100 runs x 200 points
  // draw faster in SVG (150 ms vs 570 ms in headless Chromium) and a highlight restyles
  // 25x faster (30 ms vs 750 ms: scattergl rebuilds every trace's buffers); markers,
  // drawn for short series only, stay few.
  const GL_POINTS = 50000;
  const GL_CHARTS = 8; // ... in at most this many charts: a browser keeps ~16 WebGL contexts
  const MARKERS_UP_TO = 12; // a series this short shows its points
  const MEDIA_RUNS = 12; // runs whose images a media panel shows
  const IMAGES_PER_RUN = 4;
  const DIM = 0.12; // opacity of the other runs' traces while one is highlighted
  const RAW = 0.22; // opacity of the raw line behind a smoothed one
  const MAX_IDS_IN_URL = 8000; // characters of run ids an importance request may carry
  const IMPORTANCE_TTL_MS = 60000;

  // -- values ---------------------------------------------------------------------------

  /** A run row's value of `field` ("params.lr", "metrics.acc", "tags.team"): a summary
   * metric may come as {value}; strict JSON writes NaN/inf as strings. */
  function valueOf(run, field) {
    const dot = field.indexOf(".");
    const bag = dot > 0 ? run[field.slice(0, dot)] : null;
    if (!bag || typeof bag !== "object") return undefined;
    let v = bag[field.slice(dot + 1)];
    if (v && typeof v === "object" && "value" in v) v = v.value;
    return v;
  }

  function finite(v) {
    return typeof v === "number" && Number.isFinite(v);
  }

  function numberOf(run, field) {
    const v = valueOf(run, field);
    return finite(v) ? v : null;
  }

  function clampInt(v, lo, hi, dflt) {
    const n = typeof v === "number" ? Math.round(v) : NaN;
    return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : dflt;
  }

  /** "#1f77b4" -> "rgba(31,119,180,a)": a group's band is its color, faint. */
  function rgba(hex, a) {
    const n = parseInt(hex.slice(1), 16);
    return "rgba(" + ((n >> 16) & 255) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + a + ")";
  }

  /** The q-quantile of sorted values. */
  function quantile(sorted, q) {
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.floor(q * (sorted.length - 1))))];
  }

  /** W&B's outlier clipping: the y range of the 5th..95th percentile of the points drawn,
   * with a margin, never past the data; log10 units on a log axis (plotly's ranges). */
  function robustRange(traces, log) {
    const vals = [];
    for (const t of traces) {
      for (const v of t.y) if (finite(v) && (!log || v > 0)) vals.push(log ? Math.log10(v) : v);
    }
    if (vals.length < 5) return null;
    vals.sort((a, b) => a - b);
    const lo = quantile(vals, 0.05);
    const hi = quantile(vals, 0.95);
    const span = hi - lo || Math.abs(hi) * 0.1 || 1;
    return [Math.max(vals[0], lo - 0.15 * span), Math.min(vals[vals.length - 1], hi + 0.15 * span)];
  }

  /** A plotly dimension: numbers as they are, anything else as categories. */
  function dimension(label, values) {
    if (values.every((v) => v === null || v === undefined || finite(v))) {
      return { label, values: values.map((v) => (finite(v) ? v : NaN)) };
    }
    const text = values.map((v) => RB.fmtValue(v));
    const cats = Array.from(new Set(text)).sort();
    return { label, values: text.map((t) => cats.indexOf(t)), tickvals: cats.map((_, i) => i), ticktext: cats.map((c) => RB.plotText(c)) };
  }

  function categorical(values) {
    return !values.every((v) => v === null || v === undefined || finite(v));
  }

  function runName(run) {
    return RB.plotText(typeof run.name === "string" && run.name ? run.name : run.id.slice(0, 12));
  }

  /** The run a trace (or a point of a one-trace-for-all-runs chart) belongs to. */
  function runOfPoint(pt) {
    const meta = pt && pt.data ? pt.data.meta : null;
    if (meta === "runs") return typeof pt.customdata === "string" ? pt.customdata : null;
    if (typeof meta !== "string" || meta.startsWith("group:") || meta.startsWith("band:")) return null;
    return meta.startsWith("raw:") ? meta.slice(4) : meta;
  }

  // -- panel specs (a view's `panels`) ---------------------------------------------------

  const PANEL_FIELDS = ["metric", "x", "y", "key"];

  /** A panel of a view spec, checked: only the spec's keys, in one order (a saved view
   * compares equal to the page that saved it); null for an unknown type. */
  function cleanPanel(p, used) {
    if (!p || typeof p !== "object" || !TYPES.includes(p.type)) return null;
    let id = typeof p.id === "string" && p.id && p.id.length <= 100 && !used.has(p.id) ? p.id : null;
    for (let i = used.size + 1; !id; i++) if (!used.has("p" + i)) id = "p" + i;
    used.add(id);
    const out = { id, type: p.type };
    for (const k of PANEL_FIELDS) if (typeof p[k] === "string" && p[k]) out[k] = p[k];
    if (Array.isArray(p.metrics)) out.metrics = p.metrics.filter((m) => typeof m === "string" && m);
    out.width = clampInt(p.width, 1, 4, p.type === "line" ? 1 : 2);
    out.height = clampInt(p.height, 1, 3, 1);
    return out;
  }

  function cleanChart(c) {
    c = c && typeof c === "object" ? c : {};
    const pick = (v, allowed, dflt) => (allowed.includes(v) ? v : dflt);
    const smoothing = typeof c.smoothing === "number" && Number.isFinite(c.smoothing) ? c.smoothing : 0;
    return {
      x: pick(c.x, X_MODES.map((m) => m[0]), DEFAULT_CHART.x),
      log: c.log === true,
      smoothing: Math.min(0.99, Math.max(0, Math.round(smoothing * 100) / 100)),
      clip: c.clip === true,
      band: pick(c.band, BANDS.map((b) => b[0]), DEFAULT_CHART.band),
      runs: clampInt(c.runs, 1, 500, DEFAULT_CHART.runs),
      group_by: typeof c.group_by === "string" ? c.group_by : "",
    };
  }

  // -- the workspace --------------------------------------------------------------------

  function create(root, options) {
    const opts = Object.assign({ onHoverRun: () => {}, onChange: () => {} }, options || {});
    let chart = cleanChart(null);
    let query = { where: "", sort: "", sweep: "", hybrids: false, offset: 0 };
    let hidden = new Set();
    let highlighted = null;
    let auto = true; // panels: one line per metric the runs logged, until the user edits them
    let panels = []; // [{spec, node, head, body, chart, dirty, drawn, token, ...}]
    // the runs of the page the last answer showed (its rows and the hidden ones it left
    // out), for its query and run count: grouped, only those of the hidden runs are sent
    // as `exclude` (a URL of every hidden id would grow past what the server takes)
    let pageRuns = { key: "", ids: new Set() };
    let load = newLoad();
    let started = false; // nothing loads before the table's first query (setQuery)
    let reloadPending = false; // a reload is due: what the panels miss is asked then
    const visible = new Set(); // ids of the panels near the viewport
    const glCharts = new Set(); // ids of the panels drawn with WebGL

    function newLoad() {
      return {
        cache: new Map(), // metric -> the API's entry | {missing} | {error}
        inflight: new Set(),
        pending: 0, // requests under way
        autoAsked: false,
        runs: null, // the API's run rows, in table order
        byId: new Map(),
        total: 0,
        error: null,
        extra: new Map(), // importance and media answers (promises), by request
        exclude: null, // grouped: the hidden runs of the page its requests leave out
        groupColors: new Map(), // group -> its color
      };
    }

    // -- the toolbar ----------------------------------------------------------------------

    const $x = el("select", { id: "ws-x", "aria-label": "x axis" }, X_MODES.map(([v, t]) => el("option", { value: v }, t)));
    const $log = el("input", { type: "checkbox", id: "ws-log" });
    const $smooth = el("input", { type: "range", id: "ws-smoothing", min: "0", max: "0.99", step: "0.01", value: "0", "aria-label": "smoothing" });
    const $smoothValue = el("output", { id: "ws-smoothing-value", for: "ws-smoothing" }, "0");
    const $clip = el("input", { type: "checkbox", id: "ws-clip" });
    const $group = el("select", { id: "ws-group", "aria-label": "group by" });
    const $band = el("select", { id: "ws-band", "aria-label": "band" }, BANDS.map(([v, t]) => el("option", { value: v }, t)));
    const $runs = el("select", { id: "ws-runs", "aria-label": "runs charted" });
    const $menu = el(
      "div",
      { class: "ws-add-menu", role: "menu", hidden: true },
      TYPES.map((t) => el("button", { type: "button", role: "menuitem", dataset: { panelType: t } }, TYPE_NAMES[t]))
    );
    const $add = el("button", { type: "button", id: "ws-add-panel", "aria-haspopup": "menu", "aria-expanded": "false" }, "+ Add panel");
    const $status = el("span", { id: "ws-status", class: "muted", role: "status" });
    const $grid = el("div", { class: "ws-grid" });
    const $empty = el("div", { class: "ws-grid-message", hidden: true });

    RB.fill(
      root,
      el(
        "div",
        { class: "ws-toolbar" },
        el("label", {}, "x ", $x),
        el("label", {}, $log, " log scale"),
        el("label", { title: "exponential moving average; the raw line stays faint behind" }, "smoothing ", $smooth, " ", $smoothValue),
        el("label", { title: "the y axis spans the 5th to 95th percentile of the points (with a margin): a spike does not flatten the curves" }, $clip, " ignore outliers"),
        el("label", {}, "group by ", $group),
        el("label", { title: "a group's band: its runs' min to max, or the mean ± one standard deviation" }, "band ", $band),
        el("label", { title: "how many runs of the table (from its first row, in its order) the charts show" }, "runs ", $runs),
        el("span", { class: "ws-add" }, $add, $menu),
        $status
      ),
      $empty,
      $grid
    );
    fillGroupSelect([], []);
    fillRunsSelect();

    function fillRunsSelect() {
      const counts = RUN_COUNTS.includes(chart.runs) ? RUN_COUNTS : [...RUN_COUNTS, chart.runs].sort((a, b) => a - b);
      RB.fill($runs, counts.map((n) => el("option", { value: String(n) }, String(n))));
      $runs.value = String(chart.runs);
    }

    function fillGroupSelect(paramKeys, tagKeys) {
      const values = [
        ["", "none"],
        ...paramKeys.map((k) => ["params." + k, "params." + k]),
        ...tagKeys.map((k) => ["tags." + k, "tags." + k]),
        ["status", "status"],
        ["user", "user"],
        ["sweep", "sweep"],
      ];
      if (chart.group_by && !values.some((v) => v[0] === chart.group_by)) values.push([chart.group_by, chart.group_by]);
      const same = values.length === $group.options.length && values.every((v, i) => $group.options[i].value === v[0]);
      if (!same) RB.fill($group, values.map(([v, t]) => el("option", { value: v }, t)));
      $group.value = chart.group_by;
    }

    function showChartState() {
      $x.value = chart.x;
      $log.checked = chart.log;
      $smooth.value = String(chart.smoothing);
      $smoothValue.textContent = String(chart.smoothing);
      $clip.checked = chart.clip;
      $band.value = chart.band;
      $band.disabled = !chart.group_by;
      fillRunsSelect();
      fillGroupSelect(...runKeys());
    }

    /** A toolbar change: the server's answer depends on x, grouping and the run count;
     * log scale, smoothing and clipping are redrawn from what is loaded. */
    function chartChanged(refetch) {
      $band.disabled = !chart.group_by;
      if (refetch) reload();
      else {
        for (const p of panels) if (p.spec.type === "line") p.dirty = true;
        pump();
      }
      opts.onChange();
    }

    $x.addEventListener("change", () => {
      chart.x = $x.value;
      chartChanged(true);
    });
    $log.addEventListener("change", () => {
      chart.log = $log.checked;
      chartChanged(false);
    });
    const redrawSmoothed = RB.debounce(() => chartChanged(false), 60);
    $smooth.addEventListener("input", () => {
      chart.smoothing = Math.min(0.99, Math.max(0, parseFloat($smooth.value) || 0));
      $smoothValue.textContent = String(chart.smoothing);
      redrawSmoothed();
    });
    $clip.addEventListener("change", () => {
      chart.clip = $clip.checked;
      chartChanged(false);
    });
    $group.addEventListener("change", () => {
      chart.group_by = $group.value;
      chartChanged(true);
    });
    $band.addEventListener("change", () => {
      chart.band = $band.value;
      chartChanged(true);
    });
    $runs.addEventListener("change", () => {
      chart.runs = clampInt(parseInt($runs.value, 10), 1, 500, DEFAULT_CHART.runs);
      chartChanged(true);
    });

    // the add-panel menu
    function openMenu(open) {
      $menu.hidden = !open;
      $add.setAttribute("aria-expanded", open ? "true" : "false");
      if (open) $menu.querySelector("button").focus();
    }
    $add.addEventListener("click", () => openMenu($menu.hidden));
    $menu.addEventListener("click", (e) => {
      const b = e.target.closest("button[data-panel-type]");
      if (!b) return;
      openMenu(false);
      addPanel(b.dataset.panelType);
    });
    $menu.addEventListener("keydown", (e) => {
      const items = Array.from($menu.querySelectorAll("button"));
      const i = items.indexOf(document.activeElement);
      if (e.key === "Escape") {
        openMenu(false);
        $add.focus();
      } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        items[(i + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus();
      }
    });
    document.addEventListener("click", (e) => {
      if (!$menu.hidden && !e.target.closest(".ws-add")) openMenu(false);
    });

    // -- keys of the loaded runs (the selects of the toolbar and the panels) -------------

    /** [param keys, tag keys] of the loaded runs, sorted. */
    function runKeys() {
      const params = new Set();
      const tags = new Set();
      for (const r of load.runs || []) {
        for (const k of Object.keys(r.params || {})) params.add(k);
        for (const k of Object.keys(r.tags || {})) tags.add(k);
      }
      return [[...params].sort(), [...tags].sort()];
    }

    /** Metric keys: the runs' summaries and the series the panel API answered with. */
    function metricKeys() {
      const keys = new Set();
      for (const r of load.runs || []) for (const k of Object.keys(r.metrics || {})) keys.add(k);
      for (const [k, v] of load.cache) if (v.series) keys.add(k);
      return [...keys].sort((a, b) => a.startsWith("sys/") - b.startsWith("sys/") || a.localeCompare(b));
    }

    function shownRuns() {
      return (load.runs || []).filter((r) => !hidden.has(r.id));
    }

    /** The params whose value differs between the shown runs. */
    function varyingParams(runs) {
      const [params] = runKeys();
      return params.filter((k) => new Set(runs.map((r) => JSON.stringify(valueOf(r, "params." + k) ?? null))).size > 1);
    }

    function defaultMetric() {
      const keys = metricKeys();
      return keys.find((k) => !k.startsWith("sys/")) || keys[0] || "";
    }

    // -- panels: DOM ----------------------------------------------------------------------

    function titleOf(spec) {
      switch (spec.type) {
        case "line":
          return spec.metric || "line";
        case "scatter":
          return (spec.y || "?") + " vs " + (spec.x || "?");
        case "parallel":
          return "parallel coordinates" + (spec.metric ? " · " + spec.metric : "");
        case "importance":
          return "importance for " + (spec.metric || "?");
        case "bar":
          return (spec.metric || "?") + " per run";
        default:
          return "images" + (spec.key ? " · " + spec.key : "");
      }
    }

    function button(cls, label, text, onclick) {
      return el("button", { type: "button", class: cls, title: label, "aria-label": label, onclick }, text);
    }

    function buildPanel(spec) {
      const p = { spec, dirty: true, drawn: false, token: 0, hl: undefined, selects: {} };
      p.title = el("span", { class: "ws-panel-title" });
      p.note = el("span", { class: "ws-panel-note", hidden: true });
      const handle = el("span", { class: "ws-handle", draggable: "true", title: "drag to move this panel" }, "⠿");
      const id = () => p.spec.id;
      p.head = el(
        "div",
        { class: "ws-panel-head" },
        handle,
        p.title,
        p.note,
        el(
          "span",
          { class: "ws-panel-buttons" },
          button("ws-left", "move left", "◀", () => move(id(), -1)),
          button("ws-right", "move right", "▶", () => move(id(), 1)),
          button("ws-narrower", "narrower", "−W", () => resize(id(), -1, 0)),
          button("ws-wider", "wider", "+W", () => resize(id(), 1, 0)),
          button("ws-shorter", "shorter", "−H", () => resize(id(), 0, -1)),
          button("ws-taller", "taller", "+H", () => resize(id(), 0, 1)),
          button("ws-remove", "remove this panel", "✕", () => remove(id()))
        )
      );
      p.chart = el("div", { class: "ws-chart" + (spec.type === "media" ? " ws-media" : "") });
      p.body = el("div", { class: "ws-body" }, p.chart);
      p.node = el("div", { class: "ws-panel", role: "group", dataset: { panelId: spec.id, type: spec.type } }, p.head, p.body);
      buildControls(p);
      dragAndDrop(p, handle);
      refreshPanel(p);
      observer.observe(p.node);
      return p;
    }

    /** The panel's title: its settings (the metric of a line, the axes of a scatter, ...)
     * as selects that read as text. */
    function buildControls(p) {
      const sel = (name, label, field) => {
        const s = el("select", { class: "ws-sel-" + name, "aria-label": label, title: label });
        s.addEventListener("change", () => {
          p.spec[field] = s.value;
          panelEdited(p);
        });
        p.selects[field] = s;
        return s;
      };
      const t = p.spec.type;
      const metric = () => sel("metric", "metric", "metric");
      if (t === "line") RB.fill(p.title, metric());
      else if (t === "scatter") RB.fill(p.title, sel("y", "y axis", "y"), " vs ", sel("x", "x axis", "x"));
      else if (t === "parallel") RB.fill(p.title, "parallel · ", metric());
      else if (t === "importance") RB.fill(p.title, "importance for ", metric());
      else if (t === "bar") RB.fill(p.title, metric(), " per run");
      else RB.fill(p.title, "images · ", sel("key", "image key", "key"));
    }

    /** A panel's settings changed by the user. */
    function panelEdited(p) {
      auto = false;
      refreshPanel(p);
      p.dirty = true;
      pump();
      opts.onChange();
    }

    function fillSelect(s, values, current) {
      const list = current && !values.includes(current) ? [current, ...values] : values;
      const same = list.length === s.options.length && list.every((v, i) => s.options[i].value === v);
      if (!same) RB.fill(s, list.map((v) => el("option", { value: v }, v)));
      s.value = current || "";
    }

    /** Title, data attributes, sizes, button states and the selects' options. */
    function refreshPanel(p) {
      const spec = p.spec;
      p.title.title = titleOf(spec);
      p.node.dataset.metric = spec.metric || (spec.y || "").replace(/^metrics\./, "") || spec.key || "";
      p.node.setAttribute("aria-label", TYPE_NAMES[spec.type] + ": " + titleOf(spec));
      p.node.className = "ws-panel ws-w" + spec.width + " ws-h" + spec.height;
      const i = panels.indexOf(p);
      p.head.querySelector(".ws-left").disabled = i <= 0;
      p.head.querySelector(".ws-right").disabled = i < 0 || i >= panels.length - 1;
      p.head.querySelector(".ws-narrower").disabled = spec.width <= 1;
      p.head.querySelector(".ws-wider").disabled = spec.width >= 4;
      p.head.querySelector(".ws-shorter").disabled = spec.height <= 1;
      p.head.querySelector(".ws-taller").disabled = spec.height >= 3;
      const metrics = metricKeys();
      const [params] = runKeys();
      const s = p.selects;
      if (s.metric) fillSelect(s.metric, metrics, spec.metric);
      if (s.x) fillSelect(s.x, [...params.map((k) => "params." + k), ...metrics.map((k) => "metrics." + k)], spec.x);
      if (s.y) fillSelect(s.y, [...metrics.map((k) => "metrics." + k), ...params.map((k) => "params." + k)], spec.y);
      if (s.key) fillSelect(s.key, p.mediaKeys || [], spec.key);
    }

    function refreshAll() {
      for (const p of panels) refreshPanel(p);
      gridMessage();
    }

    /** Without panels, what the grid shows instead (never a blank area). */
    function gridMessage() {
      let text = null;
      let cls = "ws-message";
      if (panels.length) text = null;
      else if (load.error) {
        text = "could not load the charts: " + load.error;
        cls += " ws-error";
      } else if (!auto) text = "no panels: add one with “+ Add panel”";
      else if (!load.runs) {
        text = "loading…";
        cls = "ws-loading";
      } else if (!load.runs.length) text = "no run matches this filter";
      else text = "no run in this view logged a metric series: add a panel (“+ Add panel”) to chart their summary metrics";
      $empty.hidden = !text;
      RB.fill($empty, text ? el("div", { class: cls, role: cls === "ws-message ws-error" ? "alert" : "status" }, text) : null);
    }

    /** A message in place of the panel's chart ("no run logged metric ..."), or a small
     * "loading…" over the chart it has (kind "loading"), or nothing. */
    function setMessage(p, text, kind) {
      for (const n of p.body.querySelectorAll(".ws-message, .ws-loading")) n.remove();
      if (!text) return;
      if (kind === "loading") {
        p.body.append(el("div", { class: "ws-loading", role: "status" }, text));
        return;
      }
      clearChart(p);
      p.dirty = false;
      p.body.append(el("div", { class: "ws-message" + (kind === "error" ? " ws-error" : ""), role: kind === "error" ? "alert" : "status" }, text));
    }

    function clearChart(p) {
      glCharts.delete(p.spec.id);
      if (p.chart.classList.contains("js-plotly-plot")) Plotly.purge(p.chart); // and its listeners
      p.chart.replaceChildren();
      p.chart._rbWorkspace = false;
      p.drawn = false;
    }

    // -- panels: add, remove, move, resize -----------------------------------------------

    function renderPanels() {
      $grid.replaceChildren(...panels.map((p) => p.node));
      refreshAll();
    }

    function setPanels(specs) {
      const used = new Set();
      const clean = specs.map((s) => cleanPanel(s, used)).filter((s) => s);
      const old = new Map(panels.map((p) => [p.spec.id, p]));
      panels = clean.map((spec) => {
        const p = old.get(spec.id);
        if (p && p.spec.type === spec.type) {
          old.delete(spec.id);
          if (JSON.stringify(p.spec) !== JSON.stringify(spec)) {
            const resized = p.spec.width !== spec.width || p.spec.height !== spec.height;
            p.spec = spec;
            p.dirty = true;
            if (resized) requestAnimationFrame(() => resizeChart(p));
          }
          return p;
        }
        return buildPanel(spec);
      });
      for (const p of old.values()) dropPanel(p);
      renderPanels();
    }

    function dropPanel(p) {
      observer.unobserve(p.node);
      visible.delete(p.spec.id);
      p.token += 1;
      clearChart(p);
    }

    function addPanel(type) {
      if (!TYPES.includes(type)) return;
      const metric = defaultMetric();
      const charted = new Set(panels.filter((p) => p.spec.type === "line").map((p) => p.spec.metric));
      const spec = { type };
      if (type === "line") {
        // a metric with points (the summaries also hold metrics logged once, such as sys/*)
        const series = [...load.cache].filter(([, v]) => v.series && v.series.length).map(([k]) => k).sort();
        spec.metric = series.find((k) => !charted.has(k)) || series[0] || metric;
      }
      else if (type === "scatter") {
        const param = varyingParams(shownRuns())[0] || runKeys()[0][0];
        spec.x = param ? "params." + param : metric ? "metrics." + metric : "";
        spec.y = metric ? "metrics." + metric : "";
      } else if (type !== "media") spec.metric = metric;
      const used = new Set(panels.map((p) => p.spec.id));
      const p = buildPanel(cleanPanel(spec, used));
      auto = false;
      panels.push(p);
      renderPanels();
      p.node.scrollIntoView({ block: "nearest" });
      pump();
      opts.onChange();
    }

    function remove(id) {
      const p = panels.find((x) => x.spec.id === id);
      if (!p) return;
      auto = false;
      panels = panels.filter((x) => x !== p);
      dropPanel(p);
      renderPanels();
      opts.onChange();
    }

    function moveTo(id, index) {
      const from = panels.findIndex((x) => x.spec.id === id);
      if (from < 0) return;
      const to = Math.max(0, Math.min(panels.length - 1, index));
      if (to === from) return;
      const [p] = panels.splice(from, 1);
      panels.splice(to, 0, p);
      auto = false;
      renderPanels();
      opts.onChange();
    }

    function move(id, delta) {
      moveTo(id, panels.findIndex((x) => x.spec.id === id) + delta);
    }

    function resize(id, dw, dh) {
      const p = panels.find((x) => x.spec.id === id);
      if (!p) return;
      p.spec.width = clampInt(p.spec.width + dw, 1, 4, 1);
      p.spec.height = clampInt(p.spec.height + dh, 1, 3, 1);
      auto = false;
      refreshPanel(p);
      requestAnimationFrame(() => resizeChart(p));
      opts.onChange();
    }

    function resizeChart(p) {
      if (p.drawn && p.chart.classList.contains("js-plotly-plot")) Plotly.Plots.resize(p.chart);
    }

    /** HTML drag and drop by the panel's handle (the chart itself drags to zoom). */
    let dragged = null;
    function dragAndDrop(p, handle) {
      handle.addEventListener("dragstart", (e) => {
        dragged = p.spec.id;
        e.dataTransfer.effectAllowed = "move";
        e.dataTransfer.setData("text/plain", p.spec.id);
        e.dataTransfer.setDragImage(p.node, 12, 12);
        p.node.classList.add("ws-dragging");
      });
      handle.addEventListener("dragend", () => {
        dragged = null;
        for (const q of panels) q.node.classList.remove("ws-dragging", "ws-drop-before", "ws-drop-after");
      });
      const after = (e) => {
        const r = p.node.getBoundingClientRect();
        return e.clientX > r.left + r.width / 2;
      };
      p.node.addEventListener("dragover", (e) => {
        if (!dragged || dragged === p.spec.id) return;
        e.preventDefault();
        e.dataTransfer.dropEffect = "move";
        p.node.classList.toggle("ws-drop-after", after(e));
        p.node.classList.toggle("ws-drop-before", !after(e));
      });
      p.node.addEventListener("dragleave", () => p.node.classList.remove("ws-drop-before", "ws-drop-after"));
      p.node.addEventListener("drop", (e) => {
        if (!dragged || dragged === p.spec.id) return;
        e.preventDefault();
        const id = dragged;
        const from = panels.findIndex((x) => x.spec.id === id);
        let to = panels.indexOf(p) + (after(e) ? 1 : 0);
        if (from < to) to -= 1;
        p.node.classList.remove("ws-drop-before", "ws-drop-after");
        moveTo(id, to);
      });
    }

    // -- loading --------------------------------------------------------------------------

    /** The panels near the viewport load and draw; the others when scrolled to. */
    const observer = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          const id = e.target.dataset.panelId;
          if (e.isIntersecting) visible.add(id);
          else visible.delete(id);
        }
        pump();
      },
      { rootMargin: "250px 0px" }
    );

    function isVisible(p) {
      return visible.has(p.spec.id);
    }

    let pumpQueued = false;
    /** Soon (once per turn of the event loop): ask for what the visible panels miss, in
     * one request, and draw the visible panels that changed. */
    function pump() {
      if (pumpQueued) return;
      pumpQueued = true;
      setTimeout(() => {
        pumpQueued = false;
        fetchMissing();
        // one chart drawn per frame: the browser paints each as it is ready, so the first
        // shows while the others are still drawn (hundreds of traces each)
        let drew = false;
        for (const p of panels) {
          if (!isVisible(p)) continue;
          if (p.dirty && drew) {
            requestAnimationFrame(pump);
            return;
          }
          if (p.dirty) {
            draw(p);
            drew = !p.dirty; // plotted (or a message): a panel still loading does not count
          } else if (p.drawn) applyHighlight(p);
        }
      }, 0);
    }

    function fetchMissing() {
      if (!started || reloadPending) return; // the query (or a new load) is on its way
      const ld = load;
      if (auto) {
        if (!ld.autoAsked) request(ld, null);
        return;
      }
      const want = [];
      for (const p of panels) {
        const m = p.spec.metric;
        if (p.spec.type !== "line" || !m || !isVisible(p)) continue;
        if (!ld.cache.has(m) && !ld.inflight.has(m) && !want.includes(m)) want.push(m);
      }
      if (want.length) request(ld, want);
      else if (!ld.runs && !ld.pending && !ld.error && panels.some(isVisible)) requestRuns(ld);
    }

    function baseParams() {
      return {
        where: query.where,
        sort: query.sort,
        sweep: query.sweep,
        hybrids: query.hybrids ? null : "false",
        offset: query.offset || null,
      };
    }

    /** Which page of runs a load shows: its query and run count. */
    function pageKey() {
      return JSON.stringify([query.where, query.sort, query.sweep, query.hybrids, query.offset || 0, chart.runs]);
    }

    /** Grouped, the hidden runs among the page's; a page not seen yet: every hidden run
     * if they are few (at most `chart.runs`), else none until an answer shows which are
     * on it. The same for every request of a load: all its bands leave out the same runs. */
    function excluded(ld) {
      if (!ld.exclude) {
        let ids = [];
        if (chart.group_by && pageRuns.key === pageKey()) ids = [...hidden].filter((id) => pageRuns.ids.has(id));
        else if (chart.group_by && hidden.size <= chart.runs) ids = [...hidden];
        ld.exclude = ids.slice(0, chart.runs);
      }
      return ld.exclude;
    }

    /** An answer's rows are the page, less the runs it excluded: those too when the
     * count says they all were on it (a run may have left the page since). A panel
     * answer's row of a hidden run (grouped) was not known to be on the page: the load
     * is asked again, without it. */
    function notePage(ld, rows, panel) {
      const key = pageKey();
      const ids = new Set(rows.map((r) => r.id));
      const out = ld.exclude || [];
      const full = Math.min(chart.runs, Math.max(0, ld.total - (query.offset || 0)));
      if (rows.length + out.length === full) for (const id of out) ids.add(id);
      pageRuns = { key, ids };
      if (panel && chart.group_by && rows.some((r) => hidden.has(r.id))) reloadSoon();
    }

    /** GET /api/panel for `metrics` (null: the API's default metrics, which make the
     * automatic panels). Hidden runs are left out of the groups' bands (the server's
     * `exclude`); ungrouped, their traces are only not drawn, so showing one again
     * needs no request. */
    async function request(ld, metrics) {
      const extra = new URLSearchParams();
      for (const m of metrics || []) extra.append("metrics", m);
      for (const id of excluded(ld)) extra.append("exclude", id);
      const path = "/api/panel" + (extra.toString() ? "?" + extra.toString() : "");
      const params = Object.assign(baseParams(), {
        runs: chart.runs,
        points: POINTS,
        x: chart.x,
        group_by: chart.group_by || null,
        band: chart.group_by ? chart.band : null,
        bounds: "false", // the lines are the buckets' means: their min and max would double the answer
      });
      if (metrics === null) ld.autoAsked = true;
      for (const m of metrics || []) ld.inflight.add(m);
      ld.pending += 1;
      status();
      let data = null;
      let error = null;
      try {
        data = checkAnswer(await RB.api(path, params));
      } catch (e) {
        error = e;
      }
      if (ld !== load) return; // the query or chart changed meanwhile: a newer load runs
      ld.pending -= 1;
      for (const m of metrics || []) ld.inflight.delete(m);
      const first = !ld.runs; // the other panels wait for the first run rows of a load
      if (error) {
        if (metrics === null || !ld.runs) ld.error = error.message;
        for (const m of metrics || []) ld.cache.set(m, { error: error.message });
      } else {
        acceptRuns(ld, data);
        notePage(ld, data.runs, true);
        noteGroups(ld, data.metrics);
        for (const m of data.metrics) ld.cache.set(m.key, m);
        for (const k of [...data.missing, ...(metrics || [])]) if (!ld.cache.has(k)) ld.cache.set(k, { missing: true });
        if (metrics === null) autoPanels(data.metrics.map((m) => m.key));
      }
      const asked = new Set(metrics || ld.cache.keys());
      for (const p of panels) if (first || (p.spec.type === "line" && asked.has(p.spec.metric))) p.dirty = true;
      refreshAll();
      status();
      pump();
    }

    /** No line panel to load: the run rows alone, from /api/runs (the same rows). */
    async function requestRuns(ld) {
      ld.pending += 1;
      status();
      let data = null;
      let error = null;
      try {
        data = await RB.api("/api/runs", Object.assign(baseParams(), { limit: chart.runs }));
        if (!data || !Array.isArray(data.runs)) throw new Error("the runs API answered without runs");
      } catch (e) {
        error = e;
      }
      if (ld !== load) return;
      ld.pending -= 1;
      if (error) ld.error = error.message;
      else {
        acceptRuns(ld, { runs: data.runs.filter((r) => r && typeof r.id === "string"), total: data.total });
        notePage(ld, ld.runs, false);
      }
      for (const p of panels) p.dirty = true;
      refreshAll();
      status();
      pump();
    }

    /** The panel API's answer, its shape checked: what the page draws from it is only
     * what has the documented types. */
    function checkAnswer(data) {
      if (!data || typeof data !== "object" || !Array.isArray(data.runs) || !Array.isArray(data.metrics)) {
        throw new Error("the panel API answered in an unknown shape");
      }
      const list = (a) => (Array.isArray(a) ? a : []);
      return {
        total: data.total,
        runs: data.runs.filter((r) => r && typeof r.id === "string"),
        metrics: data.metrics
          .filter((m) => m && typeof m.key === "string")
          .map((m) => ({
            key: m.key,
            series: list(m.series).filter((s) => s && typeof s.run === "string" && Array.isArray(s.x) && Array.isArray(s.y)),
            groups: Array.isArray(m.groups) ? m.groups.filter((g) => g && Array.isArray(g.x) && Array.isArray(g.mean)) : null,
          })),
        missing: list(data.missing).filter((k) => typeof k === "string"),
      };
    }

    function acceptRuns(ld, data) {
      ld.runs = data.runs;
      ld.byId = new Map(data.runs.map((r) => [r.id, r]));
      ld.total = typeof data.total === "number" ? data.total : data.runs.length;
      ld.error = null;
      fillGroupSelect(...runKeys());
    }

    /** The automatic panels: one line chart per metric the runs logged (the API's default
     * metrics), kept as they are when the metrics are the same. */
    function autoPanels(keys) {
      const now = panels.map((p) => p.spec.metric);
      if (now.length === keys.length && now.every((k, i) => k === keys[i])) return;
      setPanels(keys.map((k, i) => ({ id: "p" + (i + 1), type: "line", metric: k, width: 1, height: 1 })));
    }

    function status() {
      const ld = load;
      let text = "";
      if (ld.pending) text = "loading…";
      else if (ld.runs) {
        const n = ld.runs.length;
        text = (ld.total > n ? "the first " + n + " of " + ld.total + " runs" : n + " run" + (n === 1 ? "" : "s")) + (hidden.size ? " (" + shownRuns().length + " shown)" : "");
      }
      $status.textContent = text;
    }

    /** A new load: the query, the x axis, the grouping or the run count changed. The charts
     * drawn stay until the new answers replace them (no blank, no layout jump). */
    function reload() {
      reloadPending = false;
      load = newLoad();
      for (const p of panels) {
        p.dirty = true;
        p.token += 1;
      }
      status();
      pump();
    }
    // 0 ms: a query and a view's state set in one turn still make one request, and the
    // first load does not wait
    const reloadLater = RB.debounce(reload, 0);

    /** A reload soon: a query and a view's state set one after the other make one. */
    function reloadSoon() {
      reloadPending = true;
      reloadLater();
    }

    // -- drawing --------------------------------------------------------------------------

    function draw(p) {
      const ld = load;
      if (!ld.runs) {
        if (ld.error) setMessage(p, "could not load the charts: " + ld.error, "error");
        else if (!p.drawn) setMessage(p, "loading…", "loading");
        return;
      }
      if (!p.spec.metric && ["line", "parallel", "importance", "bar"].includes(p.spec.type) && defaultMetric()) {
        p.spec.metric = defaultMetric();
        refreshPanel(p);
      }
      if (!ld.runs.length) return setMessage(p, "no run matches this filter");
      if (!shownRuns().length) return setMessage(p, "every run of this view is hidden (the eye toggles of the table)");
      const drawer = { line: drawLine, scatter: drawScatter, parallel: drawParallel, importance: drawImportance, bar: drawBar, media: drawMedia }[p.spec.type];
      drawer(p, ld);
    }

    /** Plot into the panel (sized by its box), then hover and highlight. */
    function plot(p, traces, layout) {
      setMessage(p, null);
      p.dirty = false;
      const full = Object.assign({ margin: { l: 48, r: 10, t: 8, b: 30 }, showlegend: false, hovermode: "closest" }, layout);
      return RB.plot(p.chart, traces, full).then(() => {
        p.drawn = true;
        p.hl = undefined;
        if (!p.chart._rbWorkspace) {
          p.chart._rbWorkspace = true;
          p.chart.on("plotly_hover", (ev) => hoverRun(runOfPoint(ev.points && ev.points[0])));
          p.chart.on("plotly_unhover", () => hoverRun(null));
          p.chart.on("plotly_click", (ev) => {
            const pt = ev.points && ev.points[0];
            if (pt && pt.data.meta === "runs" && typeof pt.customdata === "string") window.location.href = RB.runUrl(pt.customdata);
          });
        }
        applyHighlight(p);
      });
    }

    function xValues(x) {
      return chart.x === "time" ? x.map((t) => (finite(t) ? t * 1000 : null)) : RB.numbers(x);
    }

    function drawLine(p, ld) {
      const metric = p.spec.metric;
      const entry = ld.cache.get(metric);
      if (!metric) return setMessage(p, "no metric to chart: pick one above");
      if (!entry) {
        if (!p.drawn) setMessage(p, "loading…", "loading");
        return;
      }
      if (entry.error) return setMessage(p, "could not load metric '" + metric + "': " + entry.error, "error");
      if (entry.missing) return setMessage(p, "no run in this view logged metric '" + metric + "'");
      let traces;
      if (chart.group_by && entry.groups) {
        glCharts.delete(p.spec.id); // a few groups: SVG (and its fill between the edges)
        traces = groupTraces(entry.groups, ld);
      }
      else {
        const series = entry.series.filter((s) => ld.byId.has(s.run) && !hidden.has(s.run));
        if (!series.length) return setMessage(p, "every run with metric '" + metric + "' is hidden");
        traces = runTraces(p, series, ld);
      }
      const smoothed = traces.filter((t) => !String(t.meta).startsWith("raw:") && !String(t.meta).startsWith("band:"));
      const range = chart.clip ? robustRange(smoothed, chart.log) : null;
      const groups = traces.filter((t) => String(t.meta).startsWith("group:")).length;
      const legend = groups > 0 && groups <= 8;
      plot(p, traces, {
        showlegend: legend,
        legend: { orientation: "h", x: 0, y: 1, yanchor: "bottom", font: { size: 10 }, title: { text: RB.plotText(chart.group_by) } },
        margin: { l: 48, r: 10, t: legend ? 26 : 8, b: 30 },
        uirevision: [p.spec.id, metric, chart.x, chart.log, chart.clip].join("|"),
        xaxis: { type: chart.x === "time" ? "date" : "linear", ticksuffix: chart.x === "relative" ? " s" : "" },
        yaxis: range ? { type: chart.log ? "log" : "linear", range, autorange: false } : { type: chart.log ? "log" : "linear", autorange: true },
      });
    }

    /** scattergl for many points, while few charts use it (past a browser's WebGL
     * contexts the oldest chart would go blank); SVG lines draw fast enough otherwise. */
    function traceType(p, points) {
      const gl = points > GL_POINTS && (glCharts.has(p.spec.id) || glCharts.size < GL_CHARTS);
      if (gl) glCharts.add(p.spec.id);
      else glCharts.delete(p.spec.id);
      return gl ? "scattergl" : "scatter";
    }

    function runTraces(p, series, ld) {
      const total = series.reduce((n, s) => n + s.x.length, 0) * (chart.smoothing > 0 ? 2 : 1);
      const type = traceType(p, total);
      const traces = [];
      for (const s of series) {
        const run = ld.byId.get(s.run);
        const color = RB.runColor(s.run);
        const x = xValues(s.x);
        const y = RB.numbers(s.y);
        const mode = x.length <= MARKERS_UP_TO ? "lines+markers" : "lines";
        const name = runName(run);
        if (chart.smoothing > 0) {
          traces.push({ type, x, y, mode: "lines", meta: "raw:" + s.run, line: { color, width: 1 }, opacity: RAW, hoverinfo: "skip", showlegend: false });
        }
        traces.push({
          type,
          x,
          y: RB.smooth(y, chart.smoothing),
          mode,
          name,
          meta: s.run,
          line: { color, width: 1.5 },
          marker: { size: 4, color },
          hovertemplate: "<b>%{fullData.name}</b><br>%{x}: %{y:.4g}<extra></extra>",
        });
      }
      return traces;
    }

    /** A group's color: the palette in the order of the server's `groups` answers (by
     * value), given once per load so that it is the same in every chart; a hash could
     * give two groups one color. */
    function groupColor(ld, name) {
      return ld.groupColors.get(name) || RB.runColor("group:" + name);
    }

    function noteGroups(ld, metrics) {
      for (const m of metrics) {
        for (const g of m.groups || []) {
          const name = String(g.group);
          if (!ld.groupColors.has(name)) ld.groupColors.set(name, RB.COLORS[ld.groupColors.size % RB.COLORS.length]);
        }
      }
    }

    /** Each group: its band (lo, then hi filled down to it) under its mean. */
    function groupTraces(groups, ld) {
      const traces = [];
      // hover text: the key, escaped for plotly's HTML and its %{...} templates
      const key = RB.plotText(chart.group_by, true);
      for (const g of groups) {
        const name = String(g.group);
        const color = groupColor(ld, name);
        const x = xValues(g.x);
        const smooth = (v) => RB.smooth(RB.numbers(Array.isArray(v) ? v : []), chart.smoothing);
        const n = Array.isArray(g.runs) ? g.runs.length : 0;
        const runs = " (" + n + " run" + (n === 1 ? "" : "s") + ")";
        const edge = { type: "scatter", x, mode: "lines", meta: "band:" + name, line: { width: 0, color }, hoverinfo: "skip", showlegend: false };
        traces.push(Object.assign({}, edge, { y: smooth(g.lo) }));
        traces.push(Object.assign({}, edge, { y: smooth(g.hi), fill: "tonexty", fillcolor: rgba(color, 0.2) }));
        traces.push({
          type: "scatter",
          x,
          y: smooth(g.mean),
          mode: x.length <= MARKERS_UP_TO ? "lines+markers" : "lines",
          name: RB.plotText(name), // the legend (titled with the key) stays one line
          meta: "group:" + name,
          line: { color, width: 2 },
          marker: { size: 4, color },
          hovertemplate: "<b>" + key + "=%{fullData.name}</b>" + runs + "<br>%{x}: %{y:.4g}<extra></extra>",
        });
      }
      return traces;
    }

    function drawScatter(p) {
      const { x: fx, y: fy } = p.spec;
      if (!fx || !fy) return setMessage(p, "pick the x and y of this chart above");
      const known = (v) => v !== undefined && v !== null && (typeof v !== "number" || Number.isFinite(v));
      const runs = shownRuns().filter((r) => known(valueOf(r, fx)) && known(valueOf(r, fy)));
      if (!runs.length) return setMessage(p, "no run in this view has both " + fx + " and " + fy);
      const xv = runs.map((r) => valueOf(r, fx));
      const yv = runs.map((r) => valueOf(r, fy));
      const [catX, catY] = [categorical(xv), categorical(yv)];
      const ids = runs.map((r) => r.id);
      plot(
        p,
        [
          {
            type: "scatter",
            mode: "markers",
            x: catX ? xv.map((v) => RB.plotText(RB.fmtValue(v))) : xv,
            y: catY ? yv.map((v) => RB.plotText(RB.fmtValue(v))) : yv,
            text: runs.map(runName),
            customdata: ids,
            meta: "runs",
            marker: { size: 10, color: ids.map(RB.runColor), opacity: ids.map(() => 1), line: { width: 1, color: "rgba(128,128,128,.7)" } },
            hovertemplate: "<b>%{text}</b><br>" + RB.plotText(fx, true) + ": %{x}<br>" + RB.plotText(fy, true) + ": %{y}<extra></extra>",
          },
        ],
        {
          margin: { l: 52, r: 10, t: 8, b: 40 },
          uirevision: [p.spec.id, fx, fy].join("|"),
          xaxis: { title: { text: RB.plotText(fx), font: { size: 10 } }, type: catX ? "category" : "linear" },
          yaxis: { title: { text: RB.plotText(fy), font: { size: 10 } }, type: catY ? "category" : "linear" },
        }
      );
    }

    /** Parallel coordinates: an axis per field of the panel's `metrics` (params.KEY,
     * metrics.KEY), or without them the params that differ between the runs; then the
     * metric the lines are colored by. */
    function drawParallel(p) {
      const metric = p.spec.metric;
      if (!metric) return setMessage(p, "no metric: pick one above");
      const runs = shownRuns().filter((r) => finite(numberOf(r, "metrics." + metric)));
      if (!runs.length) return setMessage(p, "no run in this view has metric '" + metric + "'");
      const own = (p.spec.metrics || []).map((f) => (f.includes(".") ? f : "params." + f)).filter((f) => f !== "metrics." + metric);
      const fields = own.length ? own.slice(0, 30) : varyingParams(runs).slice(0, 12).map((k) => "params." + k);
      if (!fields.length) return setMessage(p, "no parameter differs between the runs with metric '" + metric + "'");
      const color = runs.map((r) => numberOf(r, "metrics." + metric));
      const label = (f) => RB.plotText(own.length ? f : f.slice("params.".length));
      const dims = fields.map((f) => dimension(label(f), runs.map((r) => valueOf(r, f))));
      dims.push({ label: RB.plotText(metric), values: color });
      plot(p, [{ type: "parcoords", dimensions: dims, line: { color, colorscale: "Viridis", showscale: true, colorbar: { thickness: 10 } } }], {
        margin: { l: 50, r: 60, t: 36, b: 16 },
      });
    }

    function drawBar(p) {
      const metric = p.spec.metric;
      if (!metric) return setMessage(p, "no metric: pick one above");
      const runs = shownRuns().filter((r) => finite(numberOf(r, "metrics." + metric)));
      if (!runs.length) return setMessage(p, "no run in this view has metric '" + metric + "'");
      const names = runs.map(runName);
      const dup = names.filter((n, i) => names.indexOf(n) !== i);
      const labels = runs.map((r, i) => (dup.includes(names[i]) ? names[i] + " · " + r.id.slice(0, 6) : names[i]));
      const ids = runs.map((r) => r.id);
      plot(
        p,
        [
          {
            type: "bar",
            x: labels,
            y: runs.map((r) => numberOf(r, "metrics." + metric)),
            customdata: ids,
            meta: "runs",
            marker: { color: ids.map(RB.runColor), opacity: ids.map(() => 1) },
            hovertemplate: "<b>%{x}</b><br>" + RB.plotText(metric, true) + ": %{y:.4g}<extra></extra>",
          },
        ],
        {
          margin: { l: 52, r: 10, t: 8, b: runs.length <= 30 ? 60 : 12 },
          uirevision: [p.spec.id, metric].join("|"),
          xaxis: { type: "category", showticklabels: runs.length <= 30, tickangle: -30, automargin: true },
        }
      );
    }

    /** A GET asked once per load (importance fits a model; media lists a run's images). */
    function once(ld, key, make) {
      if (!ld.extra.has(key)) ld.extra.set(key, make());
      return ld.extra.get(key);
    }

    /** Importance fits a random forest on the server: one answer serves the same runs and
     * metric for a minute, across the reloads of a live table. */
    const importanceCache = new Map(); // params as JSON -> {at, answer (a promise)}
    function importanceOf(params) {
      const key = JSON.stringify(params);
      const hit = importanceCache.get(key);
      if (hit && Date.now() - hit.at < IMPORTANCE_TTL_MS) return hit.answer;
      const answer = RB.api("/api/importance", params);
      answer.catch(() => importanceCache.delete(key)); // a failure is asked again next time
      for (const [k, v] of importanceCache) if (Date.now() - v.at >= IMPORTANCE_TTL_MS) importanceCache.delete(k);
      importanceCache.set(key, { at: Date.now(), answer });
      return answer;
    }

    async function drawImportance(p, ld) {
      const metric = p.spec.metric;
      if (!metric) return setMessage(p, "no metric: pick one above");
      const ids = shownRuns().map((r) => r.id);
      // the runs charted; past what a URL carries, the runs of the filter
      const params = ids.join(",").length <= MAX_IDS_IN_URL ? { metric, runs: ids.join(",") } : { metric, where: query.where, sweep: query.sweep };
      const token = ++p.token;
      if (!p.drawn) setMessage(p, "computing… (fitting a random forest)", "loading");
      p.dirty = false;
      let report;
      try {
        report = await importanceOf(params);
      } catch (e) {
        if (token === p.token) setMessage(p, "no importance for '" + metric + "': " + e.message, "error");
        return;
      }
      if (token !== p.token || ld !== load) return;
      const rows = (report && Array.isArray(report.rows) ? report.rows : []).filter((r) => r && typeof r.param === "string").slice(0, 15);
      p.note.hidden = !(report && report.warning);
      p.note.textContent = report && report.warning ? "⚠" : "";
      p.note.title = report && report.warning ? String(report.warning) : "";
      if (!rows.length) return setMessage(p, "no parameter to rank for '" + metric + "'");
      const rev = rows.slice().reverse(); // plotly draws the first bar at the bottom
      plot(
        p,
        [
          {
            type: "bar",
            orientation: "h",
            x: rev.map((r) => (finite(r.rf_importance) ? r.rf_importance : 0)),
            y: rev.map((r) => RB.plotText(r.param)),
            marker: { color: rev.map((r) => ((finite(r.spearman) ? r.spearman : 0) < 0 ? "#d62728" : "#1f77b4")) },
            hovertemplate: "%{y}: %{x:.3f}<extra></extra>",
          },
        ],
        { margin: { l: 110, r: 10, t: 8, b: 30 }, xaxis: { range: [0, 1], title: { text: "rf importance (red: negative correlation)", font: { size: 10 } } }, yaxis: { automargin: true } }
      );
    }

    /** A run's media list (GET /api/runs/{id}/media); a run without any (or deleted since)
     * has none: no error. */
    function mediaOf(ld, runId, key) {
      const params = key ? { kind: "image", key } : { kind: "image" };
      return once(ld, "media|" + runId + "|" + (key || ""), () =>
        RB.api("/api/runs/" + enc(runId) + "/media", params).catch((e) => {
          if (e.status === 404) return null;
          throw e;
        })
      );
    }

    async function drawMedia(p, ld) {
      const runs = shownRuns().slice(0, MEDIA_RUNS);
      const token = ++p.token;
      if (!p.drawn) setMessage(p, "loading…", "loading");
      p.dirty = false;
      let lists;
      try {
        lists = await Promise.all(runs.map((r) => mediaOf(ld, r.id, null)));
      } catch (e) {
        if (token === p.token) setMessage(p, "could not list the images: " + e.message, "error");
        return;
      }
      if (token !== p.token) return;
      const keys = new Set();
      for (const l of lists) for (const k of (l && Array.isArray(l.keys) ? l.keys : [])) if (k && k.kind === "image" && typeof k.key === "string") keys.add(k.key);
      p.mediaKeys = [...keys].sort();
      if (!p.spec.key && p.mediaKeys.length) p.spec.key = p.mediaKeys[0];
      refreshPanel(p);
      if (!p.spec.key) return setMessage(p, "no run in this view logged an image (runbase.log_image)");
      let answers;
      try {
        answers = await Promise.all(runs.map((r) => mediaOf(ld, r.id, p.spec.key)));
      } catch (e) {
        if (token === p.token) setMessage(p, "could not load the images: " + e.message, "error");
        return;
      }
      if (token !== p.token) return;
      const byRun = runs
        .map((r, i) => ({ run: r, items: (answers[i] && Array.isArray(answers[i].items) ? answers[i].items : []).filter(validItem) }))
        .filter((x) => x.items.length);
      if (!byRun.length) return setMessage(p, "no run in this view logged image '" + p.spec.key + "'");
      showMedia(p, byRun);
    }

    function validItem(it) {
      return RB.mediaPath(it) !== null && finite(it.step);
    }

    /** The images of each run at the slider's step (a run without one there: its last
     * before it). */
    function showMedia(p, byRun) {
      const steps = Array.from(new Set(byRun.flatMap((x) => x.items.map((it) => it.step)))).sort((a, b) => a - b);
      if (!steps.includes(p.mediaStep)) p.mediaStep = steps[steps.length - 1];
      const slider = el("input", { type: "range", class: "ws-step", min: "0", max: String(steps.length - 1), step: "1", value: String(steps.indexOf(p.mediaStep)), "aria-label": "step", disabled: steps.length < 2 });
      const label = el("output", { class: "ws-step-value" });
      const grid = el("div", { class: "ws-media-grid" });
      const render = () => {
        label.textContent = "step " + p.mediaStep;
        RB.fill(
          grid,
          byRun.map(({ run, items }) => {
            const before = items.filter((it) => it.step <= p.mediaStep);
            if (!before.length) return null;
            const at = Math.max(...before.map((it) => it.step));
            const shown = before.filter((it) => it.step === at).sort((a, b) => (a.idx || 0) - (b.idx || 0)).slice(0, IMAGES_PER_RUN);
            return el(
              "figure",
              { class: "ws-figure", dataset: { run: run.id } },
              shown.map((it) =>
                el("img", { class: "ws-image", src: RB.base + RB.mediaPath(it), alt: p.spec.key + " at step " + at + " of run " + (run.name || run.id), loading: "lazy", width: finite(it.width) ? it.width : null, height: finite(it.height) ? it.height : null })
              ),
              el("figcaption", {}, el("span", { class: "swatch", style: "background:" + RB.runColor(run.id) }), run.name || run.id.slice(0, 12), at !== p.mediaStep ? el("span", { class: "muted" }, " (step " + at + ")") : null, shown[0].caption ? el("div", { class: "muted" }, String(shown[0].caption)) : null)
            );
          })
        );
      };
      slider.addEventListener("input", () => {
        p.mediaStep = steps[parseInt(slider.value, 10)] ?? p.mediaStep;
        render();
      });
      setMessage(p, null);
      clearChart(p);
      p.chart.append(el("div", { class: "ws-media-bar" }, slider, label), grid);
      p.drawn = true;
      render();
    }

    // -- highlight ------------------------------------------------------------------------

    function hoverRun(id) {
      highlight(id);
      opts.onHoverRun(id);
    }

    /** Highlight a run (null: none) in the visible charts, once per frame however fast
     * the pointer moves over the rows; the others as they are scrolled to (pump). */
    let highlightQueued = false;
    function highlight(id) {
      highlighted = typeof id === "string" && id ? id : null;
      if (highlightQueued) return;
      highlightQueued = true;
      requestAnimationFrame(() => {
        highlightQueued = false;
        for (const p of panels) if (p.drawn && isVisible(p)) applyHighlight(p);
      });
    }

    /** The highlighted run's traces emphasized, the others dimmed (in a grouped chart,
     * the run's group). */
    function applyHighlight(p) {
      if (p.hl === highlighted || !p.chart.data) return;
      p.hl = highlighted;
      const id = highlighted;
      const data = p.chart.data;
      if (p.spec.type === "line") {
        const run = id ? load.byId.get(id) : null;
        const group = run && run.group !== null && run.group !== undefined ? String(run.group) : null;
        const mine = (meta) => meta === id || meta === "raw:" + id || (group !== null && (meta === "group:" + group || meta === "band:" + group));
        const base = (meta) => (String(meta).startsWith("raw:") ? RAW : 1);
        const opacity = data.map((t) => base(t.meta) * (!id || mine(t.meta) ? 1 : DIM));
        const width = data.map((t) => {
          const m = String(t.meta);
          if (m.startsWith("band:")) return 0;
          const w = m.startsWith("raw:") ? 1 : m.startsWith("group:") ? 2 : 1.5;
          return id && mine(t.meta) && !m.startsWith("raw:") ? w + 1.5 : w;
        });
        Plotly.restyle(p.chart, { opacity, "line.width": width });
      } else if ((p.spec.type === "scatter" || p.spec.type === "bar") && data[0] && Array.isArray(data[0].customdata)) {
        Plotly.restyle(p.chart, { "marker.opacity": [data[0].customdata.map((c) => (!id || c === id ? 1 : 0.2))] }, [0]);
      }
    }

    // -- the API --------------------------------------------------------------------------

    const api = {
      /** The table's filter and sort: the charts reload (debounced). */
      setQuery(q) {
        q = q || {};
        const str = (v) => (typeof v === "string" ? v : "");
        query = { where: str(q.where), sort: str(q.sort), sweep: str(q.sweep), hybrids: q.hybrids === true, offset: clampInt(q.offset, 0, 1e9, 0) };
        started = true;
        reloadSoon();
      },
      /** Runs hidden by the table's eye toggles: their traces go (grouped, the bands are
       * asked again without them). */
      setHidden(ids) {
        const next = new Set(Array.from(ids || []).filter((id) => typeof id === "string"));
        if (next.size === hidden.size && [...next].every((id) => hidden.has(id))) return;
        const changed = [...next, ...hidden].filter((id) => next.has(id) !== hidden.has(id));
        hidden = next;
        // grouped, the bands change only when a run of the page is hidden or shown
        const onPage = (id) => pageRuns.ids.has(id) || load.byId.has(id) || (load.exclude || []).includes(id);
        if (chart.group_by && changed.some(onPage)) reload();
        else {
          for (const p of panels) {
            p.dirty = true;
            p.token += 1;
          }
          status();
          pump();
        }
      },
      highlight,
      getState() {
        return { chart: Object.assign({}, chart), panels: panels.map((p) => Object.assign({}, p.spec, p.spec.metrics ? { metrics: [...p.spec.metrics] } : {})) };
      },
      /** A saved view's chart settings and panels (without panels: the automatic ones). */
      setState(state) {
        state = state || {};
        chart = cleanChart(state.chart);
        showChartState();
        if (Array.isArray(state.panels)) {
          auto = false;
          setPanels(state.panels);
        } else {
          auto = true;
          setPanels([]);
        }
        reloadSoon();
      },
      /** The runs of the last load, in table order: [{id, name, color, hidden}]. */
      runs() {
        return (load.runs || []).map((r) => ({ id: r.id, name: r.name, color: RB.runColor(r.id), hidden: hidden.has(r.id) }));
      },
      /** Ask the server again (a live run's new points) with the same query. */
      reload() {
        started = true;
        reload();
      },
    };
    showChartState();
    return api;
  }

  return { create, TYPES };
})();
