/* runbase ui: the runs table (server-side filter, sort, paging; never every run). */
"use strict";

(() => {
  const { el, api } = RB;
  const $ = (id) => document.getElementById(id);
  const SELECTED_KEY = "runbase.selected";
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
  let selected = new Set(JSON.parse(sessionStorage.getItem(SELECTED_KEY) || "[]"));
  let keys = { params: [], metrics: [], tags: [] };
  let loading = 0;
  let refreshTimer = null;
  // the chart workspace above the table (workspace.js); the table works without it
  const ws = window.RBWorkspace ? RBWorkspace.create($("workspace"), { onHoverRun: () => {}, onChange: () => {} }) : null;
  let wsQuery = "";

  /** The workspace follows the table's filter and sort (it reloads only on a change). */
  function syncWorkspace() {
    if (!ws) return;
    const q = { where: state.where, sort: state.sort, sweep: state.sweep, hybrids: state.hybrids };
    const key = JSON.stringify(q);
    if (key === wsQuery) return;
    wsQuery = key;
    ws.setQuery(q);
  }

  function loadCols() {
    const saved = localStorage.getItem(COLUMNS_KEY);
    return saved === null ? null : JSON.parse(saved); // null: not chosen yet, pick defaults
  }

  function saveUrl() {
    const u = new URL(window.location.href);
    const set = (k, v) => (v ? u.searchParams.set(k, v) : u.searchParams.delete(k));
    set("where", state.where);
    set("sort", state.sort);
    set("offset", state.offset ? String(state.offset) : "");
    set("limit", state.limit !== 50 ? String(state.limit) : "");
    set("group_by", state.group);
    set("sweep", state.sweep);
    set("hybrids", state.hybrids ? "1" : "");
    history.replaceState(null, "", u);
  }

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
      document.body.classList.remove("loading");
      return;
    }
    if (ticket !== loading) return; // a newer request is on its way
    RB.showError($("error"), null);
    keys = { params: data.param_keys || [], metrics: data.metric_keys || [], tags: data.tag_keys || [] };
    render(data);
    renderGroupOptions();
    renderColumnList();
    if (data.runs.some((r) => r.status === "running")) refreshTimer = setTimeout(load, 5000);
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

  function row(run, cols) {
    const box = el("input", { type: "checkbox", class: "select", "aria-label": "select " + run.id, dataset: { id: run.id } });
    box.checked = selected.has(run.id);
    box.addEventListener("change", () => toggle(run.id, box.checked));
    const link = RB.runUrl(run.id);
    return el(
      "tr",
      { class: "run-row", dataset: { id: run.id } },
      el("td", { class: "sel" }, box),
      el("td", { class: "mono" }, el("a", { href: link, title: run.id }, run.id.slice(0, 10))),
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
  }

  function groupOf(run) {
    if (state.group === "sweep") return run.sweep_id || "";
    if (state.group.startsWith("tag:")) return (run.tags || {})[state.group.slice(4)] ?? "";
    return "";
  }

  function groupRow(label, info, n, width) {
    const count = info && info.count !== undefined ? info.count : n;
    let text = (state.group === "sweep" ? "sweep " : state.group.slice(4) + " = ") + (label || "(none)");
    const extra = [];
    if (state.group === "sweep" && label) {
      extra.push(" ", el("a", { href: "#", onclick: (e) => { e.preventDefault(); state.sweep = label; state.offset = 0; state.group = ""; $("group-by").value = ""; load(); } }, "only this sweep"));
    }
    return el("tr", { class: "group-row" }, el("td", { colspan: width }, el("strong", {}, text), " · " + count + " run" + (count === 1 ? "" : "s"), extra));
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
    const width = 7 + cols.length;
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
    RB.fill(body, ...rows);
    const first = data.runs.length ? data.offset + 1 : 0;
    const lastN = data.offset + data.runs.length;
    $("count").textContent = first + "–" + lastN + " of " + data.total + " run" + (data.total === 1 ? "" : "s") + (state.sweep ? " in sweep " + state.sweep.slice(0, 10) : "");
    $("count").dataset.total = data.total;
    $("prev").disabled = data.offset <= 0;
    $("next").disabled = lastN >= data.total;
    updateCompare();
  }

  function renderGroupOptions() {
    const sel = $("group-by");
    const want = ["", "sweep", ...keys.tags.filter((k) => k !== "overrides").map((k) => "tag:" + k)];
    const have = Array.from(sel.options).map((o) => o.value);
    if (want.join("\n") !== have.join("\n")) {
      RB.fill(sel, ...want.map((v) => el("option", { value: v }, v === "" ? "none" : v.startsWith("tag:") ? "tag " + v.slice(4) : v)));
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
  updateCompare();
  load();
})();
