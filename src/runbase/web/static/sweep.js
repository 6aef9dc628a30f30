/* runbase ui: one sweep (/sweeps/ID), drawn from GET /api/sweeps/ID: its trials by
 * status, the best objective so far (plotly), parameter importance and the trials table
 * (sortable, each row linking to its run). While a trial runs, or the sweep says it is
 * running, the page asks again every few seconds, so trials appear as they come in.
 * Names and parameters are user text: they only ever go in as text (RB.el, RB.plotText). */
"use strict";

(() => {
  const { el, fill } = RB;
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const POLL_MS = 3000; // while trials run
  const IDLE_POLL_MS = 5000; // a sweep that says it runs, between trials
  const STATUS_TITLES = {
    running: "running now",
    finished: "ended normally",
    pruned: "stopped early by the pruner: its metric was behind",
    failed: "exited with an error",
    killed: "ended by a signal",
    crashed: "its process vanished without finishing",
    lost: "its node or worker died; the trial was retried elsewhere",
  };

  const str = (v) => (typeof v === "string" ? v : "");
  const list = (v) => (Array.isArray(v) ? v : []);
  const obj = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});
  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

  const sweepId = str(RB.config.sweep);
  const url = new URL(window.location.href);
  const state = {
    metric: url.searchParams.get("metric") || "",
    direction: url.searchParams.get("direction") || "",
    x: url.searchParams.get("x") === "time" ? "time" : "n",
    sort: { key: "index", desc: false },
    data: null,
    timer: null,
    waiting: false, // a poll came due while the tab was hidden
    asked: null, // the metric|direction of the last full answer
    seq: 0,
  };

  function keepInUrl() {
    const u = new URL(window.location.href);
    for (const [k, v] of [["metric", state.metric], ["direction", state.direction], ["x", state.x === "time" ? "time" : ""]]) {
      if (v) u.searchParams.set(k, v);
      else u.searchParams.delete(k);
    }
    history.replaceState(null, "", u);
  }

  async function load() {
    clearTimeout(state.timer);
    const seq = ++state.seq;
    const ask = (importance) => RB.api("/api/sweeps/" + enc(sweepId), { metric: state.metric, direction: state.direction, importance });
    try {
      const asked = state.metric + "|" + state.direction;
      if (state.asked !== asked) {
        // first the trials, at once; the ranking (a model fit) follows
        const quick = await ask("false");
        if (seq !== state.seq) return;
        RB.showError($("error"), null);
        state.data = quick;
        draw(quick, true);
      }
      const data = await ask(null);
      if (seq !== state.seq) return; // a newer request (another metric) is on its way
      RB.showError($("error"), null);
      state.asked = asked;
      state.data = data;
      draw(data);
      schedule(data);
    } catch (e) {
      if (seq !== state.seq) return;
      RB.showError($("error"), e);
      if (e.status === 0 || e.status >= 500) state.timer = setTimeout(load, IDLE_POLL_MS);
    }
  }

  function schedule(data) {
    const running = num(obj(data.counts).running) || 0;
    $("sweep-live").hidden = running === 0;
    if (running > 0) state.timer = setTimeout(poll, POLL_MS);
    else if (data.status === "running") state.timer = setTimeout(poll, IDLE_POLL_MS);
  }

  // a tab in the background asks nothing; it catches up when shown again
  function poll() {
    if (document.hidden) state.waiting = true;
    else load();
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.waiting) {
      state.waiting = false;
      load();
    }
  });

  function draw(data, ranking) {
    drawHead(data);
    drawCounts(obj(data.counts));
    drawControls(data);
    drawBest(data);
    if (ranking && data.objective) fill($("importance"), el("p", { class: "muted" }, "ranking the parameters…"));
    else drawImportance(data.importance, data.objective);
    drawTrials(data);
  }

  // -- the head: name, status, spec ------------------------------------------------------

  function drawHead(data) {
    const spec = obj(data.spec);
    fill($("sweep-name"), str(spec.name) ? el("span", { class: "muted" }, str(spec.name)) : null);
    fill($("sweep-status"), data.status ? RB.statusBadge(str(data.status)) : null);
    const bits = [];
    if (data.recorded) {
      if (str(spec.search)) bits.push(el("span", {}, "search " + spec.search));
      const cmd = list(spec.command).filter((c) => typeof c === "string");
      if (cmd.length) bits.push(el("span", { class: "mono", title: cmd.join(" ") }, shorten(cmd.join(" "), 80)));
      if (num(spec.trials)) bits.push(el("span", { id: "sweep-progress" }, doneTrials(obj(data.counts)) + " of " + spec.trials + " trials done"));
      if (str(spec.prune)) bits.push(el("span", {}, "pruner " + spec.prune));
      if (str(spec.on) && spec.on !== "local") bits.push(el("span", {}, "on " + spec.on));
      if (data.created_at) bits.push(el("span", {}, "started ", RB.timeCell(data.created_at)));
      if (str(data.user)) bits.push(el("span", {}, str(data.user) + (str(data.host) ? "@" + data.host : "")));
      const study = obj(data.study);
      if (str(study.name)) bits.push(el("span", {}, "study " + study.name + (str(study.storage) ? " (" + study.storage + ")" : "")));
    }
    fill($("sweep-meta"), bits);
    $("sweep-note").hidden = !data.note;
    $("sweep-note").textContent = str(data.note);
  }

  /** Trials that ended, however they ended; a lost one is not: its retry is a run of its own. */
  function doneTrials(counts) {
    return Object.entries(counts).reduce((n, [status, k]) => n + (status === "running" || status === "lost" ? 0 : num(k) || 0), 0);
  }

  function shorten(text, n) {
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  function drawCounts(counts) {
    const chips = Object.entries(counts).map(([status, n]) =>
      el(
        "span",
        { class: "count-chip" + (n ? "" : " zero"), dataset: { status }, title: STATUS_TITLES[status] || status },
        el("b", {}, String(n)),
        status
      )
    );
    fill($("counts"), chips);
  }

  // -- the metric to judge by ----------------------------------------------------------------

  function drawControls(data) {
    const objective = data.objective ? obj(data.objective) : null;
    const chosen = objective ? str(objective.metric) : "";
    const choices = list(data.metrics).filter((m) => typeof m === "string");
    if (chosen && !choices.includes(chosen)) choices.unshift(chosen);
    const select = $("metric");
    const options = [el("option", { value: "" }, objective && objective.source === "spec" ? "(the objective)" : "(choose a metric)")];
    for (const m of choices) options.push(el("option", { value: m }, m));
    fill(select, options);
    select.value = choices.includes(state.metric) ? state.metric : "";
    $("direction").value = objective ? str(objective.direction) || "max" : state.direction || "max";
    $("direction").disabled = !objective;
    $("x-axis").value = state.x;
    let note = "";
    if (!objective) note = choices.length ? "this sweep names no objective: choose the metric to judge its trials by" : "no trial has logged a metric yet";
    else if (objective.source === "spec") note = "the sweep's objective: " + objective.metric + " (" + objective.direction + ")";
    else if (objective.direction_source === "name") note = objective.direction === "min" ? "lower is better, as its name says" : "higher is better, as its name says";
    $("objective-note").textContent = note;
  }

  // -- best so far ----------------------------------------------------------------------------

  function drawBest(data) {
    const objective = data.objective ? obj(data.objective) : null;
    const curve = list(data.best_curve);
    const best = data.best ? obj(data.best) : null;
    const node = $("best-chart");
    if (!objective || !curve.length) {
      if (node.classList.contains("js-plotly-plot")) Plotly.purge(node);
      fill(node, el("p", { class: "muted" }, objective ? "no finished trial has " + objective.metric + " yet" : "choose a metric to see the best trial so far"));
      fill($("best"), null);
      return;
    }
    fill(
      $("best"),
      el("p", {}, "best ", el("b", {}, RB.fmtValue(best.value)), " — trial ", String(best.index), ": ",
        el("a", { href: RB.runUrl(str(best.id)), class: "run-link" }, str(best.name) || str(best.id).slice(0, 10)),
        " ", el("span", { class: "muted mono" }, paramText(obj(best.params))))
    );
    const byTime = state.x === "time";
    // times as epoch milliseconds, as the runs page's time axes (an ISO offset is not plotly's)
    const xs = curve.map((p) => (byTime ? (RB.parseTime(p.time) || { getTime: () => null }).getTime() : p.n));
    const hover = curve.map((p) => RB.plotText("trial " + p.index + ": " + RB.fmtValue(p.value) + " (best " + RB.fmtValue(p.best) + ")"));
    const traces = [
      { x: xs, y: curve.map((p) => num(p.value)), mode: "markers", type: "scatter", name: "trial", text: hover, hoverinfo: "text", marker: { color: RB.COLORS[7], size: 7 } },
      { x: xs, y: curve.map((p) => num(p.best)), mode: "lines+markers", type: "scatter", line: { shape: "hv", color: RB.COLORS[2] }, name: "best so far", text: hover, hoverinfo: "text" },
    ];
    RB.plot(node, traces, {
      xaxis: byTime
        ? { title: { text: "end time" }, type: "date" }
        : { title: { text: "finished trials" }, type: "linear", tick0: 1, dtick: Math.max(1, Math.ceil(curve.length / 10)) },
      yaxis: { title: { text: RB.plotText(objective.metric) } },
      margin: { l: 60, r: 15, t: 10, b: 60 },
    });
  }

  function paramText(params) {
    return Object.entries(params).map(([k, v]) => k + "=" + RB.fmtValue(v)).join(" ");
  }

  // -- importance -------------------------------------------------------------------------

  function drawImportance(imp, objective) {
    const node = $("importance");
    if (!imp || !objective) {
      fill(node, el("p", { class: "muted" }, "choose a metric to rank the parameters by"));
      return;
    }
    imp = obj(imp);
    if (str(imp.error)) {
      fill(node, el("p", { class: "muted", id: "importance-none" }, "not enough to rank the parameters yet: " + imp.error));
      return;
    }
    const rows = list(imp.rows).map(obj);
    const max = Math.max(...rows.map((r) => num(r.rf_importance) || 0), 1e-12);
    fill(
      node,
      imp.warning ? el("div", { class: "warning", id: "importance-warning" }, str(imp.warning)) : null,
      rows.map((r) => {
        const share = num(r.rf_importance) || 0;
        const corr = num(r.spearman) !== null ? "spearman " + RB.fmtValue(r.spearman) : num(r.eta) !== null ? "eta " + RB.fmtValue(r.eta) : "";
        return el(
          "div",
          { class: "imp-row", dataset: { param: str(r.param) }, title: corr },
          el("span", { class: "imp-name mono" }, str(r.param)),
          el("span", { class: "imp-bar" }, el("span", { class: "imp-fill", style: "display:block;width:" + ((100 * share) / max).toFixed(1) + "%" })),
          el("span", { class: "imp-val" }, (100 * share).toFixed(0) + "%")
        );
      }),
      el("p", { class: "muted" }, "over " + imp.n_runs + " finished trials (random-forest share of the fit; hover for the rank correlation)"),
      Object.keys(obj(imp.dropped)).length ? el("p", { class: "muted" }, "left out: " + Object.entries(obj(imp.dropped)).map(([k, why]) => k + " (" + why + ")").join(", ")) : null
    );
  }

  // -- trials -------------------------------------------------------------------------------

  function columns(data) {
    const params = list(data.params).filter((p) => typeof p === "string");
    const objective = data.objective ? obj(data.objective) : null;
    return [
      { key: "index", label: "#", num: true, get: (t) => t.index },
      { key: "name", label: "run", get: (t) => str(t.name) || str(t.id) },
      { key: "status", label: "status", get: (t) => str(t.status) },
      ...params.map((p) => ({ key: "params." + p, label: p, param: p, get: (t) => obj(t.params)[p] })),
      { key: "value", label: objective ? str(objective.metric) : "value", num: true, get: (t) => num(t.value) },
      { key: "started", label: "started", get: (t) => str(t.started_at) },
      { key: "duration", label: "duration", num: true, get: (t) => num(t.duration_s) },
    ];
  }

  function compare(a, b) {
    const missing = (v) => v === null || v === undefined || v === "";
    if (missing(a) || missing(b)) return missing(a) - missing(b); // missing last either way
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }

  function drawTrials(data) {
    const cols = columns(data);
    const trials = list(data.trials).map(obj);
    const col = cols.find((c) => c.key === state.sort.key) || cols[0];
    const sign = state.sort.desc ? -1 : 1;
    const missing = (v) => v === null || v === undefined || v === "";
    trials.sort((a, b) => {
      const va = col.get(a);
      const vb = col.get(b);
      if (missing(va) || missing(vb)) return compare(va, vb);
      return sign * compare(va, vb) || compare(a.index, b.index);
    });
    const bestId = data.best ? str(obj(data.best).id) : "";
    fill(
      $("trials").tHead.rows[0],
      cols.map((c) =>
        el(
          "th",
          {
            class: "sortable" + (c.num ? " num" : "") + (c.key === col.key ? (state.sort.desc ? " sorted-desc" : " sorted-asc") : ""),
            dataset: { sort: c.key },
            title: "sort by " + c.label,
            onclick: () => {
              state.sort = { key: c.key, desc: c.key === state.sort.key ? !state.sort.desc : c.key === "value" && obj(data.objective).direction === "max" };
              drawTrials(state.data);
            },
          },
          c.label
        )
      )
    );
    const rows = trials.map((t) =>
      el(
        "tr",
        { class: "trial-row" + (t.id === bestId ? " best-row" : ""), dataset: { id: str(t.id), status: str(t.status) } },
        cols.map((c) => {
          if (c.key === "name") return el("td", {}, el("a", { href: RB.runUrl(str(t.id)), class: "run-link", title: str(t.id) }, c.get(t)));
          if (c.key === "status") return el("td", {}, RB.statusBadge(str(t.status)));
          if (c.key === "started") return el("td", {}, RB.timeCell(t.started_at));
          if (c.key === "duration") return el("td", { class: "num" }, RB.fmtDuration(num(t.duration_s)));
          return el("td", { class: c.num || typeof c.get(t) === "number" ? "num" : null }, RB.fmtValue(c.get(t)));
        })
      )
    );
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: cols.length, class: "muted" }, "no trial has started yet")));
    fill($("trials").tBodies[0], rows);
    $("trial-count").textContent = "(" + trials.length + ")";
  }

  // -- wiring --------------------------------------------------------------------------------

  $("metric").addEventListener("change", () => {
    state.metric = $("metric").value;
    state.direction = "";
    state.sort = { key: "index", desc: false };
    keepInUrl();
    load();
  });
  $("direction").addEventListener("change", () => {
    state.direction = $("direction").value;
    keepInUrl();
    load();
  });
  $("x-axis").addEventListener("change", () => {
    state.x = $("x-axis").value === "time" ? "time" : "n";
    keepInUrl();
    if (state.data) drawBest(state.data);
  });
  load();
})();
