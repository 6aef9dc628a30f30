/* runbase ui: the runs page. The runs table (server-side filter, sort, paging; never
 * every run) under the chart workspace (workspace.js), and the saved views that keep
 * both (docs/views.md). */
"use strict";

(() => {
  const { el, api } = RB;
  const $ = (id) => document.getElementById(id);
  const SELECTED_KEY = "runbase.selected";
  const HIDDEN_KEY = "runbase.hidden"; // the runs whose eye is off (kept as the selection is)
  const COLUMNS_KEY = "runbase.columns";
  const ALL_PARAMS_KEY = "runbase.allParams";
  const FIXED = [
    { label: "id", sort: "id" },
    { label: "name", sort: "name" },
    { label: "status", sort: "status" },
    { label: RB.config.user ? "author" : "user", sort: "user" }, // server: the pushing account
    { label: "started", sort: "started_at" },
    { label: "duration", sort: "duration" },
  ];
  const LEAD = 2; // the cells before FIXED's: the selection box, the color and the eye

  const url = new URL(window.location.href);
  const state = {
    where: url.searchParams.get("where") || "",
    sort: url.searchParams.get("sort") || "",
    offset: parseInt(url.searchParams.get("offset") || "0", 10) || 0,
    limit: parseInt(url.searchParams.get("limit") || "50", 10) || 50,
    group: url.searchParams.get("group_by") || "",
    sweep: url.searchParams.get("sweep") || "",
    hybrids: url.searchParams.get("hybrids") === "1", // runbase explain's hybrid runs, as `ls --all`
    cols: loadCols(), // null: automatic (autoColumns), else the keys the user picked
    allParams: localStorage.getItem(ALL_PARAMS_KEY) === "1",
  };
  let shownCols = []; // the columns of the last render (what the column list ticks)
  let selected = new Set(loadIds(SELECTED_KEY));
  let hidden = new Set(loadIds(HIDDEN_KEY));
  let keys = { params: [], metrics: [], tags: [] };
  let loading = 0;
  let refreshTimer = null;
  let hoveredId = null;
  let views = { views: [], default: null }; // GET /api/views
  let current = null; // the open saved view: {name, spec, default, ...} as GET /api/views/NAME
  let replacing = null; // a name the user was told exists: Save again replaces it

  function loadIds(key) {
    try {
      const ids = JSON.parse(sessionStorage.getItem(key) || "[]");
      return Array.isArray(ids) ? ids.filter((i) => typeof i === "string") : [];
    } catch (e) {
      return [];
    }
  }

  function loadCols() {
    try {
      const saved = JSON.parse(localStorage.getItem(COLUMNS_KEY));
      return Array.isArray(saved) ? saved.filter((c) => typeof c === "string" && c.includes(".")) : null;
    } catch (e) {
      return null; // not chosen yet (or unreadable): the automatic columns
    }
  }

  // -- the chart workspace ---------------------------------------------------------------

  // above the table (workspace.js; the table works without it), made once the view to
  // open is known, so its first load is already the view's
  let ws = null;
  let wsQuery = "";

  function startWorkspace() {
    // RBWorkspace: a top-level const of workspace.js (a global, not a property of window)
    if (typeof RBWorkspace === "undefined") return;
    ws = RBWorkspace.create($("workspace"), { onHoverRun: (id) => markHovered(id, true), onChange: () => updateModified() });
    syncWorkspace();
    if (current) ws.setState(workspaceState(current.spec || {}));
    ws.setHidden(new Set(hidden));
  }

  /** A view spec's part of the workspace (without panels: the automatic ones). */
  function workspaceState(spec) {
    return { chart: spec.chart, panels: spec.panels };
  }

  /** The workspace follows the table's filter, sort and page (it reloads only on a change). */
  function syncWorkspace() {
    if (!ws) return;
    // the charts show the table's page: its runs, from its offset
    const q = { where: state.where, sort: state.sort, sweep: state.sweep, hybrids: state.hybrids, offset: state.offset };
    const key = JSON.stringify(q);
    if (key === wsQuery) return;
    wsQuery = key;
    ws.setQuery(q);
  }

  /** A run hovered in a chart (or its row): its row gets `hovered`; from a chart, the
   * row is scrolled into the table's own view when out of it (the page never moves). */
  function markHovered(id, fromChart) {
    hoveredId = id || null;
    for (const tr of document.querySelectorAll("#runs tr.hovered")) {
      if (tr.dataset.run !== hoveredId) tr.classList.remove("hovered");
    }
    if (!hoveredId) return;
    const tr = rowOf(hoveredId);
    if (!tr) return;
    tr.classList.add("hovered");
    if (fromChart) revealRow(tr);
  }

  function rowOf(id) {
    return Array.from(document.querySelectorAll("#runs tr.run-row")).find((tr) => tr.dataset.run === id) || null;
  }

  /** Scroll the table's box (not the page) just enough for `tr` to show under the header. */
  function revealRow(tr) {
    const box = $("table-wrap");
    const view = box.getBoundingClientRect();
    const r = tr.getBoundingClientRect();
    const head = $("runs").tHead.getBoundingClientRect().height;
    if (r.top < view.top + head) box.scrollTop -= view.top + head - r.top;
    else if (r.bottom > view.bottom) box.scrollTop += r.bottom - view.bottom;
  }

  // -- the URL ---------------------------------------------------------------------------

  /** The page's state in its URL. With a saved view open: `view=NAME` and only what
   * differs from the view (so a reload keeps the changes); without: as before, and
   * `view=` (none) where a default view would otherwise open. */
  function saveUrl() {
    const u = new URL(window.location.href);
    const spec = current ? current.spec : null;
    const put = (k, v, saved) => {
      if (spec ? v !== saved : v) u.searchParams.set(k, v);
      else u.searchParams.delete(k);
    };
    put("where", state.where, spec && (spec.where || ""));
    put("sort", state.sort, spec && (spec.sort || ""));
    put("group_by", state.group, spec && (spec.group_by || ""));
    put("sweep", state.sweep, spec && (spec.sweep || ""));
    if (spec) put("hybrids", state.hybrids ? "1" : "0", spec.hybrids ? "1" : "0");
    else put("hybrids", state.hybrids ? "1" : "");
    const setOrDrop = (k, v) => (v ? u.searchParams.set(k, v) : u.searchParams.delete(k));
    setOrDrop("offset", state.offset ? String(state.offset) : "");
    setOrDrop("limit", state.limit !== 50 ? String(state.limit) : "");
    if (current) u.searchParams.set("view", current.name);
    else if (views.default) u.searchParams.set("view", "");
    else u.searchParams.delete("view");
    history.replaceState(null, "", u);
  }

  // -- the table -------------------------------------------------------------------------

  /** A column: {key: "params.lr", scope, name, sort}. */
  function column(key) {
    const dot = key.indexOf(".");
    const scope = key.slice(0, dot);
    const name = key.slice(dot + 1);
    return { key, scope, name, sort: RB.field(scope, name) };
  }

  /** As `runbase ls`: the params that differ between the runs of the page (all of
   * them with "constant params too"), then their metrics but the system ones. */
  function autoColumns(runs) {
    const pkeys = new Set();
    const mkeys = new Set();
    for (const r of runs) {
      for (const k of Object.keys(r.params || {})) pkeys.add(k);
      for (const k of Object.keys(r.metrics || {})) if (!k.startsWith("sys/")) mkeys.add(k);
    }
    const differs = (k) => new Set(runs.map((r) => (k in (r.params || {}) ? JSON.stringify(r.params[k]) : "\u0000absent"))).size > 1;
    const params = [...pkeys].sort();
    const shown = runs.length < 2 || state.allParams ? params : params.filter(differs);
    return { cols: [...shown.map((k) => "params." + k), ...[...mkeys].sort().map((k) => "metrics." + k)], hidden: params.length - shown.length };
  }

  function cellValue(run, col) {
    const bag = run[col.scope] || {};
    let v = bag[col.name];
    if (v && typeof v === "object" && "value" in v) v = v.value;
    return v;
  }

  async function load() {
    clearTimeout(refreshTimer);
    const ticket = ++loading;
    saveUrl();
    syncWorkspace();
    updateModified();
    let data;
    try {
      data = await api("/api/runs", {
        where: state.where,
        sort: state.sort,
        limit: state.limit,
        offset: state.offset,
        sweep: state.sweep,
        group_by: state.group,
        hybrids: state.hybrids ? null : "false",
      });
    } catch (e) {
      if (ticket !== loading) return;
      RB.showError($("error"), e);
      return;
    }
    if (ticket !== loading) return; // a newer request is on its way
    RB.showError($("error"), null);
    keys = { params: data.param_keys || [], metrics: data.metric_keys || [], tags: data.tag_keys || [] };
    render(data);
    renderGroupOptions();
    renderColumnList();
    updateModified();
    if (data.runs.some((r) => r.status === "running")) refreshTimer = setTimeout(refresh, 5000);
  }

  /** A running run on the page: the table and the charts are asked again (new points). */
  function refresh() {
    load();
    if (ws) ws.reload();
  }

  function header(cols) {
    const tr = $("runs").tHead.rows[0];
    RB.fill(tr);
    const all = el("input", { type: "checkbox", title: "select the runs of this page", "aria-label": "select all" });
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll("#runs tbody input.select")) {
        box.checked = all.checked;
        toggle(box.dataset.id, all.checked);
      }
    });
    tr.append(el("th", { class: "sel" }, all));
    const showAll = el("button", { type: "button", class: "link show-all", title: "show every run in the charts" }, "show all");
    showAll.hidden = hidden.size === 0;
    showAll.addEventListener("click", () => setHidden(new Set()));
    tr.append(el("th", { class: "vis", "aria-label": "in the charts" }, showAll));
    const current = state.sort.replace(/^-/, "");
    const desc = state.sort.startsWith("-");
    const specs = [...FIXED, ...cols.map((c) => ({ label: c.key, sort: c.sort, numeric: c.scope !== "tags" }))];
    for (const spec of specs) {
      let arrow = "";
      if (current === spec.sort) arrow = desc ? " ▼" : " ▲";
      else if (!state.sort && spec.sort === "started_at") arrow = " ▼";
      const th = el("th", { class: "sortable" + (spec.numeric ? " num" : ""), title: "sort by " + spec.sort, dataset: { sort: spec.sort } }, spec.label + arrow);
      th.addEventListener("click", () => {
        if (current === spec.sort) state.sort = desc ? spec.sort : "-" + spec.sort;
        else if (!state.sort && spec.sort === "started_at") state.sort = "started_at";
        else state.sort = defaultDirection(spec);
        state.offset = 0;
        load();
      });
      tr.append(th);
    }
  }

  function defaultDirection(spec) {
    // numbers and times read best largest/newest first; text alphabetically
    return ["id", "name", "status", "user"].includes(spec.sort) || spec.sort.startsWith("tags.") ? spec.sort : "-" + spec.sort;
  }

  /** An eye: open while the run is in the charts; struck through when hidden. */
  function eyeIcon() {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    const part = (tag, attrs) => {
      const n = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      svg.append(n);
    };
    part("path", { d: "M2 12s3.6-7 10-7 10 7 10 7-3.6 7-10 7S2 12 2 12z" });
    part("circle", { cx: "12", cy: "12", r: "3" });
    part("line", { class: "slash", x1: "4", y1: "20", x2: "20", y2: "4" });
    return svg;
  }

  function eyeButton(id) {
    const b = el("button", { type: "button", class: "eye", dataset: { run: id } }, eyeIcon());
    setEye(b, !hidden.has(id));
    b.addEventListener("click", () => toggleHidden(id));
    return b;
  }

  function setEye(button, shown) {
    button.setAttribute("aria-pressed", shown ? "true" : "false");
    const label = (shown ? "shown in the charts: hide " : "hidden from the charts: show ") + button.dataset.run.slice(0, 10);
    button.setAttribute("aria-label", label);
    button.title = label + " (h)";
  }

  function row(run, cols) {
    const box = el("input", { type: "checkbox", class: "select", "aria-label": "select " + run.id, dataset: { id: run.id } });
    box.checked = selected.has(run.id);
    box.addEventListener("change", () => toggle(run.id, box.checked));
    const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.backgroundColor = RB.runColor(run.id);
    const link = RB.runUrl(run.id);
    const tr = el(
      "tr",
      { class: "run-row" + (hidden.has(run.id) ? " run-hidden" : ""), tabindex: "0", dataset: { id: run.id, run: run.id } },
      el("td", { class: "sel" }, box),
      el("td", { class: "vis" }, swatch, eyeButton(run.id)),
      el("td", { class: "mono" }, el("a", { href: link, title: run.id, tabindex: "-1" }, run.id.slice(0, 10))),
      el("td", {}, el("a", { href: link }, run.name)),
      el("td", {}, RB.statusBadge(run.status)),
      el("td", { class: "run-user", title: (run.tags || {}).host_user ? "on their machine: " + run.tags.host_user : null }, run.user || ""),
      el("td", {}, RB.timeCell(run.started_at)),
      el("td", { class: "num" }, RB.fmtDuration(run.duration_s)),
      cols.map((c) => {
        const v = cellValue(run, c);
        return el("td", { class: typeof v === "number" ? "num" : "" }, RB.fmtValue(v));
      })
    );
    tr.addEventListener("mouseenter", () => hoverRow(run.id));
    tr.addEventListener("mouseleave", () => hoverRow(null));
    return tr;
  }

  /** The pointer (or the keyboard's focus) on a row: that run stands out in every chart. */
  function hoverRow(id) {
    markHovered(id, false);
    if (ws) ws.highlight(id);
  }

  /** A run's group, as /api/runs counts them (`groups[].key`, as a string). */
  function groupOf(run) {
    const g = state.group;
    if (g === "sweep") return run.sweep_id || "";
    if (g === "status" || g === "user" || g === "host") return run[g] ?? "";
    if (g.startsWith("tag:")) return (run.tags || {})[g.slice(4)] ?? "";
    if (g.startsWith("param:")) {
      let v = (run.params || {})[g.slice(6)];
      if (v && typeof v === "object" && "value" in v) v = v.value;
      return v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : v;
    }
    return "";
  }

  /** How a grouping reads: "sweep", "lr", "status", ... */
  function groupName(g) {
    return g.startsWith("tag:") ? "tag " + g.slice(4) : g.startsWith("param:") ? g.slice(6) : g;
  }

  function groupRow(label, info, n, width) {
    const count = info && info.count !== undefined ? info.count : n;
    const g = state.group;
    const text = (g === "sweep" ? "sweep " : (g.startsWith("tag:") ? g.slice(4) : groupName(g)) + " = ") + (label === "" ? "(none)" : label);
    const extra = [];
    if (state.group === "sweep" && label) {
      extra.push(" ", el("a", { href: "#", onclick: (e) => { e.preventDefault(); state.sweep = label; state.offset = 0; state.group = ""; $("group-by").value = ""; load(); } }, "only this sweep"));
      extra.push(" · ", el("a", { href: RB.base + "/sweeps/" + encodeURIComponent(label), class: "sweep-page-link" }, "sweep page"));
    }
    return el("tr", { class: "group-row" }, el("td", { colspan: width }, el("strong", {}, text), " · " + count + " run" + (count === 1 ? "" : "s"), extra));
  }

  /** Filtered by a sweep: a link to its sweep page (trials by status, best so far) beside the count. */
  function sweepPageLink() {
    let link = $("sweep-page");
    if (!link) {
      link = el("a", { id: "sweep-page", class: "sweep-page-link", style: "margin-left: 8px" }, "sweep page");
      $("count").after(link);
    }
    link.hidden = !state.sweep;
    link.href = state.sweep ? RB.base + "/sweeps/" + encodeURIComponent(state.sweep) : "#";
  }

  function render(data) {
    const auto = autoColumns(data.runs);
    shownCols = state.cols === null ? auto.cols : state.cols;
    const cols = shownCols.map(column);
    $("all-params").checked = state.allParams;
    $("all-params").disabled = state.cols !== null; // the user's own pick shows what it names
    $("hidden-params").textContent = state.cols === null && auto.hidden ? "(" + auto.hidden + " hidden)" : "";
    header(cols);
    const body = $("runs").tBodies[0];
    const width = LEAD + FIXED.length + cols.length;
    const rows = [];
    if (state.group) {
      const info = new Map();
      for (const g of data.groups || []) info.set(g.key === null || g.key === undefined ? "" : String(g.key), g);
      let last = null;
      const order = [];
      const byGroup = new Map();
      for (const run of data.runs) {
        const g = String(groupOf(run));
        if (!byGroup.has(g)) {
          byGroup.set(g, []);
          order.push(g);
        }
        byGroup.get(g).push(run);
      }
      for (const g of order) {
        if (g !== last) rows.push(groupRow(g, info.get(g), byGroup.get(g).length, width));
        last = g;
        for (const run of byGroup.get(g)) rows.push(row(run, cols));
      }
    } else {
      for (const run of data.runs) rows.push(row(run, cols));
    }
    if (!data.runs.length) {
      rows.push(el("tr", { class: "empty" }, el("td", { colspan: width }, state.where || state.sweep ? "no runs match" : "no runs yet: try `runbase run -- python train.py`")));
    }
    // a key of the filter that no run has (a misspelling): said, with the close ones
    RB.fill($("filter-notes"), ...(data.notes || []).map((n) => el("div", {}, n)));
    $("filter-notes").hidden = !(data.notes || []).length;
    // a refresh (a live run) keeps the keyboard's place in the table
    const focused = document.activeElement && document.activeElement.matches("#runs tr.run-row") ? document.activeElement.dataset.run : null;
    RB.fill(body, ...rows);
    if (focused && rowOf(focused)) rowOf(focused).focus({ preventScroll: true });
    if (hoveredId) markHovered(hoveredId, false);
    const first = data.runs.length ? data.offset + 1 : 0;
    const lastN = data.offset + data.runs.length;
    $("count").textContent = first + "–" + lastN + " of " + data.total + " run" + (data.total === 1 ? "" : "s") + (state.sweep ? " in sweep " + state.sweep.slice(0, 10) : "");
    $("count").dataset.total = data.total;
    sweepPageLink();
    $("prev").disabled = data.offset <= 0;
    $("next").disabled = lastN >= data.total;
    updateCompare();
  }

  function renderGroupOptions() {
    const sel = $("group-by");
    const want = [
      "", "sweep", "status", "user", "host",
      ...keys.params.slice(0, 200).map((k) => "param:" + k),
      ...keys.tags.filter((k) => k !== "overrides").map((k) => "tag:" + k),
    ];
    const have = Array.from(sel.options).map((o) => o.value);
    if (want.join("\n") !== have.join("\n")) {
      RB.fill(sel, ...want.map((v) => el("option", { value: v }, v === "" ? "none" : v.startsWith("param:") ? "param " + v.slice(6) : groupName(v))));
    }
    if (state.group && !want.includes(state.group)) sel.append(el("option", { value: state.group }, state.group));
    sel.value = state.group;
  }

  function renderColumnList() {
    const list = $("column-list");
    const q = $("column-search").value.trim().toLowerCase();
    const all = [
      ...keys.params.map((k) => "params." + k),
      ...keys.metrics.map((k) => "metrics." + k),
      ...keys.tags.map((k) => "tags." + k),
    ];
    const chosen = new Set(shownCols);
    const shown = all.filter((k) => !q || k.toLowerCase().includes(q)).slice(0, 300);
    RB.fill(list,
      ...shown.map((k) => {
        const box = el("input", { type: "checkbox", value: k });
        box.checked = chosen.has(k);
        box.addEventListener("change", () => {
          const cols = shownCols.filter((c) => c !== k); // from what is shown: auto becomes a pick
          if (box.checked) cols.push(k);
          state.cols = cols;
          localStorage.setItem(COLUMNS_KEY, JSON.stringify(cols));
          load();
        });
        return el("label", { class: "col-option" }, box, " ", k);
      }),
      all.length === 0 ? el("div", { class: "muted" }, "no params or metrics yet") : null
    );
  }

  function toggle(id, on) {
    if (on) selected.add(id);
    else selected.delete(id);
    sessionStorage.setItem(SELECTED_KEY, JSON.stringify(Array.from(selected)));
    updateCompare();
  }

  function updateCompare() {
    const n = selected.size;
    $("compare").disabled = n < 1;
    $("compare").textContent = n ? "Compare " + n + " run" + (n === 1 ? "" : "s") : "Compare";
    $("clear-selection").hidden = n === 0;
  }

  // -- the eyes: which runs the charts leave out -----------------------------------------

  function toggleHidden(id) {
    const next = new Set(hidden);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setHidden(next);
  }

  function setHidden(ids) {
    hidden = ids;
    sessionStorage.setItem(HIDDEN_KEY, JSON.stringify(Array.from(hidden)));
    if (ws) ws.setHidden(new Set(hidden));
    for (const b of document.querySelectorAll("#runs button.eye")) {
      setEye(b, !hidden.has(b.dataset.run));
      b.closest("tr").classList.toggle("run-hidden", hidden.has(b.dataset.run));
    }
    const showAll = document.querySelector("#runs .show-all");
    if (showAll) showAll.hidden = hidden.size === 0;
    updateModified();
  }

  // -- the keyboard: rows are focusable, arrows move, Enter opens, Space selects ---------

  function onRowKey(e) {
    const tr = e.target;
    if (!(tr instanceof HTMLTableRowElement) || !tr.classList.contains("run-row")) return;
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const rows = Array.from($("runs").tBodies[0].querySelectorAll("tr.run-row"));
    const i = rows.indexOf(tr);
    const to = { ArrowDown: rows[i + 1], ArrowUp: rows[i - 1], Home: rows[0], End: rows[rows.length - 1] }[e.key];
    if (to !== undefined) {
      if (to) to.focus();
    } else if (e.key === "Enter") {
      window.location.href = RB.runUrl(tr.dataset.run);
    } else if (e.key === " ") {
      tr.querySelector("input.select").click();
    } else if (e.key === "h" || e.key === "H") {
      toggleHidden(tr.dataset.run);
    } else {
      return;
    }
    e.preventDefault();
  }

  // -- saved views (docs/views.md) -------------------------------------------------------

  const BAD_NAME = /[\/\u0000-\u001f\u007f-\u009f]/; // the server checks the rest (docs/views.md)
  const canWrite = !RB.config.user || RB.config.role !== "reader"; // the team server's writer role

  function viewPath(name) {
    return "/api/views/" + encodeURIComponent(name);
  }

  /** The page as a view spec: the table's state, the eyes, the workspace's charts. */
  function currentSpec() {
    const spec = {
      version: 1,
      where: state.where,
      sort: state.sort,
      group_by: state.group,
      sweep: state.sweep,
      hybrids: state.hybrids,
      columns: state.cols === null ? null : state.cols.slice(),
      hidden: Array.from(hidden).sort(),
    };
    if (ws) {
      const w = ws.getState() || {};
      if (w.chart !== undefined) spec.chart = w.chart;
      if (w.panels !== undefined) spec.panels = w.panels;
    }
    return spec;
  }

  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

  /** Whether the page differs from `saved`. A key the saved spec leaves out is automatic
   * (its default); a chart setting or a panel's key it leaves out is not compared. */
  function differs(saved, now) {
    const table = { where: "", sort: "", group_by: "", sweep: "", hybrids: false, columns: null };
    for (const [k, dflt] of Object.entries(table)) if (!same(saved[k] ?? dflt, now[k])) return true;
    if (!same([...(saved.hidden || [])].sort(), now.hidden)) return true;
    if (saved.chart && now.chart && Object.keys(saved.chart).some((k) => !same(saved.chart[k], now.chart[k]))) return true;
    if (Array.isArray(saved.panels) && Array.isArray(now.panels)) {
      if (saved.panels.length !== now.panels.length) return true;
      return saved.panels.some((p, i) => Object.keys(p).some((k) => !same(p[k], (now.panels[i] || {})[k])));
    }
    return false;
  }

  function updateModified() {
    $("view-modified").hidden = !current || !differs(current.spec || {}, currentSpec());
  }

  function viewMessage(text) {
    RB.showError($("view-error"), text ? { message: text } : null);
  }

  function viewStatus(...parts) {
    RB.fill($("view-status"), ...parts);
  }

  /** A failed view request, said in the page. */
  function viewFailed(e, name) {
    if (e.status === 404) return viewMessage(`view "${name}" does not exist (deleted or renamed?)`);
    if (e.status === 403) return viewMessage("saving views needs the writer role in this project: " + e.message);
    viewMessage(e.message);
  }

  async function refreshViews() {
    const list = await api("/api/views");
    views = { views: Array.isArray(list.views) ? list.views : [], default: list.default ?? null };
    renderViewControls();
    return views;
  }

  function renderViewControls() {
    const sel = $("view-select");
    const want = [["", "(no saved view)", ""]];
    for (const v of views.views) {
      if (typeof v.name !== "string") continue;
      const who = ["saved", v.user ? "by " + v.user : "", v.updated_at ? RB.fmtTime(v.updated_at) : ""].filter(Boolean).join(" ");
      want.push([v.name, v.name + (v.default ? " (default)" : ""), who]);
    }
    // refilled only when it changed: the list is asked again while the select has focus
    const have = Array.from(sel.options).map((o) => [o.value, o.textContent, o.title]);
    if (!same(want, have)) RB.fill(sel, want.map(([value, text, title]) => el("option", { value, title: title || null }, text)));
    sel.value = current ? current.name : "";
    const open = Boolean(current);
    $("view-default").checked = open && Boolean(current.default);
    $("view-default").disabled = !open || !canWrite;
    $("view-delete").disabled = !open || !canWrite;
    $("view-save").disabled = !canWrite;
    const why = canWrite ? null : "saving views needs the writer role in this project";
    for (const id of ["view-save", "view-delete", "view-default"]) $(id).title = why || "";
    updateModified();
  }

  /** Put a saved view's spec on the page; `overrides`: a URL whose own table parameters
   * win (a reloaded page keeps what was changed after opening the view). */
  function applySpec(spec, overrides) {
    state.where = typeof spec.where === "string" ? spec.where : "";
    state.sort = typeof spec.sort === "string" ? spec.sort : "";
    state.group = typeof spec.group_by === "string" ? spec.group_by : "";
    state.sweep = typeof spec.sweep === "string" ? spec.sweep : "";
    state.hybrids = spec.hybrids === true;
    state.cols = Array.isArray(spec.columns) ? spec.columns.filter((c) => typeof c === "string" && c.includes(".")) : null;
    state.offset = 0;
    if (overrides) {
      const p = overrides.searchParams;
      if (p.has("where")) state.where = p.get("where");
      if (p.has("sort")) state.sort = p.get("sort");
      if (p.has("group_by")) state.group = p.get("group_by");
      if (p.has("sweep")) state.sweep = p.get("sweep");
      if (p.has("hybrids")) state.hybrids = p.get("hybrids") === "1";
      state.offset = parseInt(p.get("offset") || "0", 10) || 0;
    }
    $("filter").value = state.where;
    $("show-hybrids").checked = state.hybrids;
    $("group-by").value = state.group;
    if (ws) {
      syncWorkspace(); // the query first: setState loads at once
      ws.setState(workspaceState(spec));
    }
    setHidden(new Set(Array.isArray(spec.hidden) ? spec.hidden.filter((i) => typeof i === "string") : []));
  }

  /** Open the saved view `name`; false (and a message) when it cannot be. */
  async function openView(name, overrides) {
    let view;
    try {
      view = await api(viewPath(name));
    } catch (e) {
      viewFailed(e, name);
      return false;
    }
    current = view;
    replacing = null;
    viewMessage(null);
    viewStatus();
    applySpec(view.spec || {}, overrides);
    renderViewControls();
    return true;
  }

  async function saveView() {
    const name = $("view-name").value.trim();
    const length = Array.from(name).length; // characters, not UTF-16 units
    if (length < 1 || length > 100 || BAD_NAME.test(name) || name === "." || name === "..") {
      viewMessage("a view's name: 1 to 100 printable characters, no '/' (and not '.' or '..')");
      return;
    }
    const exists = views.views.some((v) => v.name === name);
    if (exists && (!current || current.name !== name) && replacing !== name) {
      replacing = name;
      viewStatus(`a view named "${name}" exists: Save again to replace it`);
      return;
    }
    let saved;
    try {
      saved = await RB.apiSend("PUT", viewPath(name), { spec: currentSpec() });
    } catch (e) {
      viewFailed(e, name);
      return;
    }
    current = saved;
    replacing = null;
    viewMessage(null);
    viewStatus(`saved view "${name}"`);
    $("view-save-form").hidden = true;
    await refreshViewsQuietly();
    saveUrl();
  }

  async function deleteView() {
    if (!current) return;
    const gone = current;
    try {
      await RB.apiSend("DELETE", viewPath(gone.name));
    } catch (e) {
      viewFailed(e, gone.name);
      if (e.status === 404) await dropDeleted();
      return;
    }
    current = null;
    viewMessage(null);
    const undo = el("button", { type: "button", class: "link", id: "view-undo" }, "undo");
    undo.addEventListener("click", async () => {
      try {
        current = await RB.apiSend("PUT", viewPath(gone.name), { spec: gone.spec, default: Boolean(gone.default) });
      } catch (e) {
        viewFailed(e, gone.name);
        return;
      }
      viewStatus(`view "${gone.name}" restored`);
      await refreshViewsQuietly();
      saveUrl();
    });
    viewStatus(`deleted view "${gone.name}" `, undo);
    await refreshViewsQuietly();
    saveUrl();
  }

  async function setDefault(on) {
    if (!current) return;
    const name = current.name;
    // only the flag (no spec): the saved spec stays as whoever saved it last left it, and
    // a view deleted meanwhile is a 404, not brought back
    try {
      current = await RB.apiSend("PUT", viewPath(name), { default: on });
    } catch (e) {
      $("view-default").checked = !on;
      if (e.status === 404) await dropDeleted();
      else viewFailed(e, name);
      return;
    }
    viewStatus(on ? `"${name}" is the default view` : `"${name}" is no longer the default view`);
    await refreshViewsQuietly();
  }

  async function refreshViewsQuietly() {
    try {
      await refreshViews();
    } catch (e) {
      viewMessage(e.message);
    }
  }

  /** The open view still saved? (someone may have deleted it); if not, the page says so. */
  async function stillThere() {
    await refreshViewsQuietly();
    if (!current || views.views.some((v) => v.name === current.name)) return true;
    await dropDeleted();
    return false;
  }

  async function dropDeleted() {
    const name = current ? current.name : "";
    current = null;
    viewMessage(`view "${name}" does not exist anymore (deleted elsewhere?): the page keeps its state; Save view as… saves it again`);
    await refreshViewsQuietly();
    saveUrl();
  }

  $("view-select").addEventListener("change", async () => {
    const name = $("view-select").value;
    if (!name) {
      current = null; // the page keeps its state, no view attached
      renderViewControls();
      saveUrl();
      return;
    }
    if (await openView(name, null)) load();
    else renderViewControls();
  });
  // a view deleted under an open page is found when the list is looked at again
  $("view-select").addEventListener("focus", () => {
    if (current) stillThere();
    else refreshViewsQuietly();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && current) stillThere();
  });
  $("view-save").addEventListener("click", () => {
    const form = $("view-save-form");
    form.hidden = !form.hidden;
    if (!form.hidden) {
      $("view-name").value = current ? current.name : "";
      $("view-name").focus();
    }
  });
  $("view-name").addEventListener("input", () => {
    replacing = null;
    viewStatus();
  });
  $("view-name").addEventListener("keydown", (e) => {
    if (e.key === "Enter") saveView();
    if (e.key === "Escape") $("view-save-form").hidden = true;
  });
  $("view-save-confirm").addEventListener("click", saveView);
  $("view-save-cancel").addEventListener("click", () => ($("view-save-form").hidden = true));
  $("view-delete").addEventListener("click", deleteView);
  $("view-default").addEventListener("change", (e) => setDefault(e.target.checked));

  // -- the controls ----------------------------------------------------------------------

  $("filter").value = state.where;
  $("filter-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.where = $("filter").value.trim();
    state.offset = 0;
    load();
  });
  $("filter").addEventListener("search", () => {
    if ($("filter").value === "" && state.where) {
      state.where = "";
      state.offset = 0;
      load();
    }
  });
  $("group-by").addEventListener("change", () => {
    state.group = $("group-by").value;
    state.offset = 0;
    load();
  });
  $("page-size").value = String(state.limit);
  $("page-size").addEventListener("change", () => {
    state.limit = parseInt($("page-size").value, 10);
    state.offset = 0;
    load();
  });
  $("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    load();
  });
  $("next").addEventListener("click", () => {
    state.offset += state.limit;
    load();
  });
  $("column-search").addEventListener("input", RB.debounce(renderColumnList, 150));
  $("show-hybrids").checked = state.hybrids;
  $("show-hybrids").addEventListener("change", (e) => {
    state.hybrids = e.target.checked;
    state.offset = 0;
    load();
  });
  $("all-params").addEventListener("change", (e) => {
    state.allParams = e.target.checked;
    localStorage.setItem(ALL_PARAMS_KEY, state.allParams ? "1" : "0");
    load();
  });
  $("default-columns").addEventListener("click", () => {
    state.cols = null;
    localStorage.removeItem(COLUMNS_KEY);
    load();
  });
  $("compare").addEventListener("click", () => {
    window.location.href = RB.compareUrl(Array.from(selected));
  });
  $("clear-selection").addEventListener("click", () => {
    selected = new Set();
    sessionStorage.removeItem(SELECTED_KEY);
    for (const box of document.querySelectorAll("#runs input[type=checkbox]")) box.checked = false;
    updateCompare();
  });
  const tbody = $("runs").tBodies[0];
  tbody.addEventListener("keydown", onRowKey);
  tbody.addEventListener("focusin", (e) => {
    if (e.target instanceof HTMLTableRowElement && e.target.dataset.run) hoverRow(e.target.dataset.run);
  });
  tbody.addEventListener("focusout", (e) => {
    if (e.target instanceof HTMLTableRowElement && hoveredId === e.target.dataset.run) hoverRow(null);
  });
  updateCompare();

  /** The view to open (`?view=NAME`, or the default one on a bare `/`), then the charts
   * and the runs; the list of views comes alongside. */
  async function start() {
    const wanted = url.searchParams.get("view");
    const bare = Array.from(url.searchParams.keys()).length === 0;
    const listing = refreshViews().catch((e) => viewMessage("saved views: " + e.message));
    if (wanted) await openView(wanted, url);
    else if (bare) {
      await listing;
      if (views.default) await openView(views.default, null);
    }
    startWorkspace();
    load();
    await listing;
    renderViewControls();
  }
  start();
})();
