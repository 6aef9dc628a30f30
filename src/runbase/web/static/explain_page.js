/* runbase ui: the explain page, /explain?a=A&b=B[&metric=M]: the saved `runbase explain A B`. */
"use strict";

(() => {
  const { el, api } = RB;
  const enc = encodeURIComponent;
  const cfg = RB.config;
  const root = document.getElementById("explain");

  /** The compare page's diff of A and B, at the factor's section (compare.js scrolls there). */
  function diffLink(view) {
    const base = RB.base + "/compare?runs=" + enc(view.a.id) + "," + enc(view.b.id);
    return (section) => el("a", { href: base + (section ? "&section=" + enc(section) : "") + "#diff", class: "explain-diff" }, "diff");
  }

  function header(view) {
    return el("div", { class: "run-list", id: "explain-runs" },
      el("a", { class: "run-chip", href: RB.runUrl(view.a.id), title: view.a.id }, "A ", view.a.name || "", " ", el("span", { class: "muted mono" }, view.a.id.slice(0, 8))),
      "→",
      el("a", { class: "run-chip", href: RB.runUrl(view.b.id), title: view.b.id }, "B ", view.b.name || "", " ", el("span", { class: "muted mono" }, view.b.id.slice(0, 8))),
      el("a", { href: RB.compareUrl([view.a.id, view.b.id]), id: "explain-compare" }, "compare"),
      el("a", { href: RB.compareUrl([view.a.id, view.b.id]) + "#diff" }, "diff"));
  }

  async function main() {
    if (!cfg.a || !cfg.b) {
      RB.fill(root, el("div", { class: "error" }, "give the two runs: /explain?a=RUN_A&b=RUN_B (and &metric=M for one metric)"));
      return;
    }
    let view;
    try {
      view = await api("/api/explain", { a: cfg.a, b: cfg.b, metric: cfg.metric });
    } catch (e) {
      RB.fill(root, el("div", { class: "error", id: "explain-error" }, e.message));
      return;
    }
    RB.fill(root, header(view), RB.renderExplain(view, { runHref: RB.runUrl, diffLink: diffLink(view) }));
    if (view.explained) document.title = "Explain " + view.metric + ": " + (view.a.name || view.a.id) + " → " + (view.b.name || view.b.id) + " - runbase";
    RB.drawExplain(root, view);
  }

  main();
})();
