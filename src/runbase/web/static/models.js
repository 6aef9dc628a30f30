/* runbase ui: the model registry. /models lists every model (GET /api/models); /models/NAME
 * shows one (GET /api/models/NAME, its /log and /api/models/verify): the versions beside
 * their runs' metrics, the stages, open promotion requests, the event history and a
 * compare of two versions. Nothing the API answers is trusted to have its shape: every
 * field is checked before use, and text only ever goes in as text. */
"use strict";

(() => {
  const { el } = RB;
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const MAX_METRIC_COLUMNS = 8; // the versions table's metric columns: the most common keys

  const str = (v) => (typeof v === "string" ? v : "");
  const list = (v) => (Array.isArray(v) ? v : []);
  const obj = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});

  function modelUrl(name) {
    return RB.base + "/models/" + enc(name);
  }

  function stageBadge(stage, version) {
    return el("span", { class: "stage-badge", dataset: { stage } }, version ? stage + " " + version : stage);
  }

  function versionLink(version) {
    return el("a", { href: "#version-" + version, class: "mono" }, version);
  }

  function runLink(v) {
    if (!str(v.run)) {
      return el("span", { class: "badge warn no-provenance", title: "registered with --external: no run produced these bytes" }, "no provenance");
    }
    const label = str(v.run_name) || v.run.slice(0, 10);
    return el(
      "span",
      {},
      el("a", { href: RB.runUrl(v.run), class: "run-link", title: v.run }, label),
      v.run_status && v.run_status !== "finished" ? RB.statusBadge(str(v.run_status)) : null,
      v.run_name === null || v.run_name === undefined ? el("span", { class: "muted" }, " (not in this store)") : null
    );
  }

  function user(u) {
    return str(u) || el("span", { class: "muted" }, "?");
  }

  function messageCell(text) {
    return el("td", { class: "message" }, str(text) || el("span", { class: "muted" }, "—"));
  }

  function grid(id, label, headers, rows) {
    return el(
      "table",
      { class: "grid models-grid", id, "aria-label": label },
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : null }, h.label || h)))),
      el("tbody", {}, rows)
    );
  }

  // -- /models ------------------------------------------------------------------------------

  async function modelsPage() {
    RB.api("/api/models/verify").then(renderVerify, (e) => renderVerify({ error: e.message }));
    let body;
    try {
      body = await RB.api("/api/models");
    } catch (e) {
      RB.fill($("models"));
      RB.showError($("error"), e);
      return;
    }
    const models = list(obj(body).models).filter((m) => str(obj(m).name));
    if (!models.length) {
      RB.fill(
        $("models"),
        el("p", { class: "muted", id: "no-models" }, "No models yet: register a run's output with ", el("code", {}, "runbase model register NAME RUN:PATH"), ".")
      );
      return;
    }
    const rows = models.map((m) =>
      el(
        "tr",
        { dataset: { model: m.name } },
        el("td", {}, el("a", { href: modelUrl(m.name), class: "model-link" }, m.name)),
        el("td", { class: "mono" }, str(m.latest)),
        el("td", { class: "num" }, typeof m.versions === "number" ? String(m.versions) : ""),
        el("td", { class: "stages" }, stageList(obj(m.stages))),
        el("td", {}, RB.timeCell(m.updated_at))
      )
    );
    RB.fill($("models"), grid("models-table", "models", ["Model", "Latest", { label: "Versions", num: true }, "Stages", "Last change"], rows));
  }

  function stageList(stages) {
    const names = Object.keys(stages).sort();
    if (!names.length) return el("span", { class: "muted" }, "none");
    return names.map((s) => stageBadge(s, str(stages[s])));
  }

  // -- /models/NAME -------------------------------------------------------------------------

  async function modelPage() {
    const name = str(RB.config.name);
    const path = "/api/models/" + enc(name);
    RB.api("/api/models/verify").then(renderVerify, (e) => renderVerify({ error: e.message }));
    let detail;
    let log;
    try {
      [detail, log] = await Promise.all([RB.api(path), RB.api(path + "/log")]);
    } catch (e) {
      for (const id of ["stages", "versions", "history"]) RB.fill($(id));
      RB.showError($("error"), e);
      return;
    }
    if (obj(detail).name !== name) {
      // /api/models/verify and /api/models/resolve are routes: a model of either name is
      // not answered by GET /api/models/NAME (the CLI still reads it)
      for (const id of ["stages", "versions", "history"]) RB.fill($(id));
      RB.showError($("error"), new Error("the API did not answer model " + name + " (`runbase model show " + name + "` shows it)"));
      return;
    }
    const versions = list(obj(detail).versions).filter((v) => str(obj(v).version));
    const events = list(obj(log).events).filter((e) => str(obj(e).action));
    renderStages(obj(detail.stages), events);
    renderRequests(list(detail.requests));
    renderVersions(versions);
    renderHistory(events, new Map(versions.filter((v) => str(v.run) && str(v.run_name)).map((v) => [v.run, v.run_name])));
    setupCompare(versions);
  }

  /** Each stage: the version it holds, since when and by whom (the log's last event that
   * put that version there), and why. */
  function renderStages(stages, events) {
    const names = Object.keys(stages).sort();
    if (!names.length) {
      RB.fill($("stages"), el("p", { class: "muted" }, "No stage holds a version yet: ", el("code", {}, "runbase model promote " + RB.config.name + " VERSION --to production -m WHY")));
      return;
    }
    const rows = names.map((stage) => {
      const version = str(stages[stage]);
      const last = events.filter((e) => e.stage === stage && (e.action === "promote" || e.action === "rollback") && e.to_version === version).pop();
      return el(
        "tr",
        { dataset: { stage } },
        el("td", {}, stageBadge(stage)),
        el("td", {}, versionLink(version)),
        el("td", {}, last ? RB.timeCell(last.time) : ""),
        el("td", {}, last ? user(last.user) : ""),
        messageCell(last ? last.message : null)
      );
    });
    RB.fill($("stages"), grid("stages-table", "stages", ["Stage", "Version", "Since", "By", "Why"], rows));
  }

  function renderRequests(requests) {
    const open = requests.filter((r) => obj(r).state === "open");
    $("requests-section").hidden = !open.length;
    if (!open.length) return;
    const rows = open.map((r) =>
      el(
        "tr",
        { dataset: { request: str(r.id) } },
        el("td", { class: "mono", title: str(r.id) }, str(r.id).slice(0, 10)),
        el("td", { class: "change" }, versionLink(str(r.version)), " → ", stageBadge(str(r.stage))),
        el("td", {}, user(r.requested_by)),
        el("td", {}, RB.timeCell(r.requested_at)),
        messageCell(r.message),
        el("td", {}, el("code", {}, "runbase model approve " + str(r.id)))
      )
    );
    RB.fill($("requests"), grid("requests-table", "open promotion requests", ["Request", "Promote", "Asked by", "When", "Why", "Approve with"], rows));
  }

  /** The metric keys most versions' runs logged, at most MAX_METRIC_COLUMNS. */
  function metricKeys(versions) {
    const counts = new Map();
    for (const v of versions) for (const k of Object.keys(obj(v.metrics))) counts.set(k, (counts.get(k) || 0) + 1);
    const keys = Array.from(counts.keys()).sort((a, b) => counts.get(b) - counts.get(a) || (a < b ? -1 : 1));
    return { shown: keys.slice(0, MAX_METRIC_COLUMNS).sort(), hidden: Math.max(0, keys.length - MAX_METRIC_COLUMNS) };
  }

  function renderVersions(versions) {
    const { shown, hidden } = metricKeys(versions);
    const rows = versions.map((v) => {
      const metrics = obj(v.metrics);
      const size = typeof v.size === "number" ? ", " + RB.fmtBytes(v.size) : "";
      return el(
        "tr",
        { id: "version-" + v.version, dataset: { version: v.version } },
        el("td", { class: "mono version" }, v.version),
        el("td", { class: "stages" }, list(v.stages).map((s) => stageBadge(str(s)))),
        el("td", {}, runLink(v)),
        shown.map((k) => el("td", { class: "num", title: k in metrics ? String(metrics[k]) : null }, RB.fmtValue(metrics[k]))),
        el("td", {}, RB.timeCell(v.created_at)),
        el("td", {}, user(v.user)),
        messageCell(v.message),
        el("td", { class: "mono", title: str(v.oid) + " (" + str(v.kind) + size + ")" + (str(v.path) ? "\n" + v.path : "") }, RB.shortHash(v.oid))
      );
    });
    const headers = ["Version", "Stages", "Run", ...shown.map((k) => ({ label: k, num: true })), "Created", "By", "Message", "Bytes"];
    RB.fill(
      $("versions"),
      grid("versions-table", "versions", headers, rows),
      hidden ? el("p", { class: "muted" }, hidden + " more metric" + (hidden === 1 ? "" : "s") + " on each run's page") : null
    );
  }

  const ACTION_TEXT = { register: "registered", promote: "promoted", demote: "demoted", rollback: "rolled back", request: "requested", approve: "approved", reject: "rejected" };

  /** What an event changed: a version registered (from which run), or a stage's from -> to. */
  function change(e, runNames) {
    const none = el("span", { class: "muted" }, "(none)");
    const data = obj(e.data);
    if (e.action === "register") {
      const run = str(e.run);
      if (!run) return [versionLink(str(e.version)), " ", el("span", { class: "badge warn no-provenance" }, "no provenance")];
      return [versionLink(str(e.version)), " from ", el("a", { href: RB.runUrl(run), class: "run-link", title: run }, runNames.get(run) || run.slice(0, 10))];
    }
    if (e.action === "request" || e.action === "approve" || e.action === "reject") {
      return [versionLink(str(e.version)), " → ", stageBadge(str(e.stage)), str(data.request) ? el("span", { class: "muted" }, " request " + data.request.slice(0, 10)) : null];
    }
    return [
      stageBadge(str(e.stage)),
      " ",
      str(e.from_version) ? versionLink(e.from_version) : none,
      " → ",
      str(e.to_version) ? versionLink(e.to_version) : none,
      str(data.approved_by) ? el("span", { class: "muted" }, " approved by " + data.approved_by) : null,
    ];
  }

  function renderHistory(events, runNames) {
    if (!events.length) {
      RB.fill($("history"), el("p", { class: "muted" }, "No events."));
      return;
    }
    const rows = events.map((e) =>
      el(
        "tr",
        { dataset: { seq: String(e.seq), action: e.action } },
        el("td", { class: "num mono" }, String(e.seq)),
        el("td", {}, RB.timeCell(e.time)),
        el("td", { class: "who" }, user(e.user)),
        el("td", {}, el("span", { class: "action-badge", dataset: { action: e.action } }, ACTION_TEXT[e.action] || e.action)),
        el("td", { class: "change" }, change(e, runNames)),
        messageCell(e.message),
        el(
          "td",
          { class: "mono chain", title: "this event's hash: " + str(e.hash) + "\nthe one before: " + str(e.prev_hash) },
          RB.shortHash(e.prev_hash),
          " → ",
          RB.shortHash(e.hash)
        )
      )
    );
    RB.fill($("history"), grid("history-table", "event history", [{ label: "#", num: true }, "When", "Who", "Action", "Change", "Why", "Chain (before → this)"], rows));
  }

  /** The store's whole chain, checked by the server: a badge, and its problems listed. */
  function renderVerify(report) {
    const r = obj(report);
    if (r.error) {
      RB.fill($("verify-badge"), el("span", { class: "badge warn", id: "chain-state" }, "chain not checked: " + r.error));
      return;
    }
    const problems = list(r.problems).map(str);
    if (r.ok === true && !problems.length) {
      const n = typeof r.events === "number" ? r.events : 0;
      RB.fill($("verify-badge"), el("span", { class: "badge ok", id: "chain-state", title: "runbase model verify: every event's hash and the log's head check out" }, "chain verified · " + n + " event" + (n === 1 ? "" : "s")));
      return;
    }
    RB.fill($("verify-badge"), el("span", { class: "badge bad", id: "chain-state", title: "runbase model verify reports problems" }, "chain broken: " + problems.length + " problem" + (problems.length === 1 ? "" : "s")));
    if ($("verify-problems")) RB.fill($("verify-problems"), el("div", { class: "error", role: "alert" }, el("ul", { class: "problems" }, problems.map((p) => el("li", {}, p)))));
  }

  // -- compare two versions ---------------------------------------------------------------

  function setupCompare(versions) {
    const byVersion = new Map(versions.map((v) => [v.version, v]));
    const a = $("compare-a");
    const b = $("compare-b");
    for (const select of [a, b]) {
      RB.fill(select, versions.map((v) => el("option", { value: v.version }, v.version + (list(v.stages).length ? " (" + list(v.stages).join(", ") + ")" : ""))));
    }
    // the newest against the one before it, of those with a run to compare: what a
    // promotion of the newest would change
    const runs = versions.filter((v) => str(v.run));
    const pair = runs.length > 1 ? runs : versions;
    b.value = pair.length ? pair[0].version : "";
    a.value = pair.length > 1 ? pair[1].version : b.value;
    const update = () => renderCompare(byVersion.get(a.value), byVersion.get(b.value));
    a.addEventListener("change", update);
    b.addEventListener("change", update);
    $("compare-form").addEventListener("submit", (ev) => ev.preventDefault());
    update();
  }

  function renderCompare(va, vb) {
    const link = $("compare-link");
    const note = $("compare-note");
    link.hidden = true;
    RB.fill($("compare-deltas"));
    if (!va || !vb) {
      note.textContent = "this model has no versions";
      return;
    }
    if (va.version === vb.version) {
      note.textContent = "pick two different versions";
      return;
    }
    const external = [va, vb].filter((v) => !str(v.run));
    if (external.length) {
      note.textContent = external.map((v) => v.version).join(" and ") + ": no provenance, no run to compare";
    } else if (va.run === vb.run) {
      note.textContent = "both versions come from the same run";
    } else {
      note.textContent = "";
      link.href = RB.compareUrl([va.run, vb.run]);
      link.textContent = "Compare the runs of " + va.version + " and " + vb.version;
      link.hidden = false;
    }
    RB.fill($("compare-deltas"), deltas(va, vb));
  }

  /** Each metric of the two runs: A, B, and B - A (and the change in percent). */
  function deltas(va, vb) {
    const ma = obj(va.metrics);
    const mb = obj(vb.metrics);
    const keys = Array.from(new Set([...Object.keys(ma), ...Object.keys(mb)])).sort();
    if (!keys.length) return el("p", { class: "muted" }, "no metrics to compare");
    const rows = keys.map((k) => {
      const x = ma[k];
      const y = mb[k];
      const both = typeof x === "number" && typeof y === "number" && Number.isFinite(x) && Number.isFinite(y);
      const d = both ? y - x : null;
      const pct = both && x !== 0 ? ((y - x) / Math.abs(x)) * 100 : null;
      return el(
        "tr",
        { dataset: { metric: k } },
        el("th", { class: "mono" }, k),
        el("td", { class: "num" }, RB.fmtValue(x)),
        el("td", { class: "num" }, RB.fmtValue(y)),
        el("td", { class: "num delta" }, d === null ? "" : (d > 0 ? "+" : "") + RB.fmtValue(d)),
        el("td", { class: "num muted" }, pct === null ? "" : (pct > 0 ? "+" : "") + pct.toFixed(1) + "%")
      );
    });
    return el(
      "table",
      { class: "grid models-grid", id: "deltas-table", "aria-label": "metric deltas" },
      el("thead", {}, el("tr", {}, el("th", {}, "Metric"), el("th", { class: "num" }, "A " + va.version), el("th", { class: "num" }, "B " + vb.version), el("th", { class: "num" }, "B − A"), el("th", { class: "num" }, "%"))),
      el("tbody", {}, rows)
    );
  }

  const nav = $("nav-models");
  if (nav) nav.setAttribute("aria-current", "page");
  if (RB.config.page === "models") modelsPage();
  else if (RB.config.page === "model") modelPage();
})();
