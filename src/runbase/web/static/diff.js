/* runbase ui: the diff report (docs/diff-format.md) as HTML, like `runbase diff`. */
"use strict";

(() => {
  const { el } = RB;
  const LABELS = { run: "command and exit status" };
  const SECTIONS = ["params", "metrics", "code", "data", "env", "run"];

  /** JSON with sorted keys: compares values as the Python side does. */
  function canon(v) {
    return JSON.stringify(v, (k, x) =>
      x && typeof x === "object" && !Array.isArray(x)
        ? Object.fromEntries(Object.keys(x).sort().map((kk) => [kk, x[kk]]))
        : x
    );
  }

  function show(v) {
    if (typeof v === "string") return v;
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v.join(" ");
    const s = canon(v);
    return s === undefined ? "null" : s.length <= 200 ? s : s.slice(0, 199) + "…";
  }

  function num(v) {
    return typeof v === "number" && !Number.isInteger(v) ? String(Number(v.toPrecision(6))) : show(v);
  }

  function line(kind, text, extra) {
    return el("div", { class: "dl dl-" + kind }, text, extra ? el("span", { class: "muted" }, extra) : null);
  }

  function who(run) {
    return run.id.slice(0, 10) + " (" + run.name + ")";
  }

  function fields(name, change) {
    if (!change) return [];
    const { old, new: nw } = change;
    if (old && nw && typeof old === "object" && typeof nw === "object" && !Array.isArray(old) && !Array.isArray(nw)) {
      const keys = Array.from(new Set([...Object.keys(old), ...Object.keys(nw)])).sort();
      return keys
        .filter((k) => canon(old[k]) !== canon(nw[k]))
        .map((k) => line("changed", name + "." + k + ": " + show(old[k]) + " → " + show(nw[k])));
    }
    return [line("changed", name + ": " + show(old) + " → " + show(nw))];
  }

  /** A unified diff / git patch, line by line: + green, - red, @@ cyan. */
  function renderPatch(patch) {
    const pre = el("pre", { class: "patch" });
    let inBinary = false;
    for (const text of patch.split("\n")) {
      if (text.startsWith("diff --git")) inBinary = false;
      else if (text === "GIT binary patch") {
        inBinary = true;
        pre.append(el("span", { class: "pl pl-meta" }, "binary files differ"), "\n");
        continue;
      }
      if (inBinary) continue;
      let cls = "pl";
      if (text.startsWith("+++") || text.startsWith("---") || text.startsWith("diff --git")) cls += " pl-file";
      else if (text.startsWith("@@")) cls += " pl-hunk";
      else if (text.startsWith("+")) cls += " pl-add";
      else if (text.startsWith("-")) cls += " pl-del";
      pre.append(el("span", { class: cls }, text), "\n");
    }
    return pre;
  }

  function src(...sources) {
    const uniq = Array.from(new Set(sources.filter((s) => s)));
    return uniq.length ? "  [" + uniq.join(" → ") + "]" : "";
  }

  function params(s) {
    return [
      ...s.added.map((p) => line("added", "+ " + p.key + " = " + show(p.value), src(p.source))),
      ...s.removed.map((p) => line("removed", "- " + p.key + " = " + show(p.value), src(p.source))),
      ...s.changed.map((p) =>
        line("changed", "~ " + p.key + ": " + show(p.old) + " → " + show(p.new), src(p.old_source, p.new_source))
      ),
    ];
  }

  function metrics(s) {
    const out = s.changed.map((m) => {
      let size = "";
      if (m.relative !== null && m.relative !== undefined) {
        size = "  (" + signed(m.delta) + ", " + (m.relative >= 0 ? "+" : "") + (m.relative * 100).toFixed(1) + "%)";
      } else if (m.delta !== null && m.delta !== undefined) size = "  (" + signed(m.delta) + ", from 0)";
      return line("changed", "~ " + m.key + ": " + num(m.old) + " → " + num(m.new), size);
    });
    out.push(...s.added.map((m) => line("added", "+ " + m.key + " = " + num(m.value))));
    out.push(...s.removed.map((m) => line("removed", "- " + m.key + " = " + num(m.value))));
    return out;
  }

  function signed(x) {
    return (x >= 0 ? "+" : "") + String(Number(x.toPrecision(4)));
  }

  function codeLine(tag, state) {
    if (!state) return line("plain", tag + ": no code snapshot");
    if (state.kind !== "git") return line("plain", tag + ": directory snapshot (not a git repository)");
    let where = "commit " + (state.commit || "(none yet)").slice(0, 10);
    if (state.branch) where += " on " + state.branch;
    if (state.patch_id) return line("plain", tag + ": " + where + ", ", el("span", { class: "badge warn" }, "uncommitted changes"));
    return line("plain", tag + ": " + where + ", clean" + (state.dirty ? " (untracked data files only)" : ""));
  }

  function code(s) {
    const out = [codeLine("A", s.a), codeLine("B", s.b)];
    for (const f of s.files) {
      let note = f.binary ? " (binary files differ)" : "";
      if (f.mode) note += " (type " + f.mode.old + " → " + f.mode.new + ")";
      out.push(line(f.status === "added" ? "added" : f.status === "removed" ? "removed" : "changed", f.status + ": " + f.path + note));
    }
    if (s.not_diffed && s.not_diffed.length) {
      out.push(line("plain", "not diffed (data, large or secret files): " + s.not_diffed.join(", ")));
    }
    for (const f of s.files) if (f.diff) out.push(renderPatch(f.diff));
    return out;
  }

  function files(title, part) {
    const size = (n) => RB.fmtBytes(n);
    if (!part.added.length && !part.removed.length && !part.changed.length) return [line("plain", title + ": unchanged")];
    return [
      line("plain", title + ":"),
      ...part.added.map((f) => line("added", "  + " + f.path + "  " + RB.shortHash(f.hash) + " (" + size(f.size) + ")")),
      ...part.removed.map((f) => line("removed", "  - " + f.path + "  " + RB.shortHash(f.hash) + " (" + size(f.size) + ")")),
      ...part.changed.flatMap((f) => [
        line(
          "changed",
          "  ~ " + f.path + "  " + RB.shortHash(f.old_hash) + " → " + RB.shortHash(f.new_hash) +
            " (" + size(f.old_size) + " → " + size(f.new_size) + ")"
        ),
        // what changed inside the file (docs/diff-format.md, "content"), when computed
        ...(f.content && f.content.summary ? [line("plain", "      " + f.content.summary)] : []),
      ]),
    ];
  }

  function data(s) {
    return [...files("inputs", s.inputs), ...files("outputs", s.outputs)];
  }

  function env(s) {
    const out = fields("python", s.python);
    const pk = s.packages || {};
    const counts = Object.entries(pk).filter(([, v]) => v && v.length).map(([k, v]) => v.length + " " + k);
    if (counts.length) {
      out.push(line("plain", "packages: " + counts.join(", ")));
      for (const p of pk.upgraded || []) out.push(line("changed", "  ↑ " + p.name + " " + p.old + " → " + p.new));
      for (const p of pk.downgraded || []) out.push(line("changed", "  ↓ " + p.name + " " + p.old + " → " + p.new));
      for (const p of pk.changed || []) out.push(line("changed", "  ~ " + p.name + " " + p.old + " → " + p.new + " (source changed)"));
      for (const p of pk.added || []) out.push(line("added", "  + " + p.name + " " + p.version));
      for (const p of pk.removed || []) out.push(line("removed", "  - " + p.name + " " + p.version));
    }
    for (const key of ["os", "cpu", "gpus", "container"]) out.push(...fields(key, s[key]));
    return out;
  }

  function run(s) {
    return ["command", "status", "exit_code"].flatMap((k) => fields(k, s[k]));
  }

  const RENDER = { params, metrics, code, data, env, run };

  function head(report) {
    const w = who(report.a);
    const h = report.head;
    if (!h) return [line("plain", w + ": no code snapshot was recorded")];
    if (h.kind !== "git") return [line("plain", w + " ran outside a git repository: there is no commit to compare with")];
    let where = "commit " + (h.commit || "(none yet)").slice(0, 10);
    if (h.branch) where += " on " + h.branch;
    if (h.patch === null && h.patch_id) return [line("plain", w + ": the stored patch cannot be read (see `runbase fsck`)")];
    if (h.patch === null) return [line("plain", w + ": no uncommitted changes against " + where)];
    return [el("h3", {}, w + ": uncommitted changes against " + where), renderPatch(h.patch)];
  }

  /** The whole report: a block per section, unchanged sections collapsed to one line. */
  function renderDiff(report) {
    const root = el("div", { class: "diff" });
    if ("head" in report) {
      root.append(...head(report));
      return root;
    }
    root.append(el("h3", {}, "diff " + who(report.a) + " → " + who(report.b)));
    for (const name of SECTIONS) {
      const s = report[name];
      if (!s) continue;
      const label = LABELS[name] || name;
      const sec = el("section", { class: "diff-section", dataset: { section: name } });
      if (s.unchanged) {
        const why = s.command && s.command.explained_by_params ? " (the command differs only by the params above)" : "";
        sec.append(el("div", { class: "dl dl-same" }, label + ": unchanged" + why));
      } else {
        sec.append(el("h4", {}, label), ...RENDER[name](s));
      }
      root.append(sec);
    }
    return root;
  }

  RB.renderDiff = renderDiff;
  RB.renderPatch = renderPatch;
})();
