/* runbase ui: helpers shared by every page (and inlined into `runbase report`). */
"use strict";

const RB = (() => {
  const cfgNode = document.getElementById("runbase-config");
  const config = cfgNode ? JSON.parse(cfgNode.textContent) : { base: "" };
  const base = config.base || "";

  /** Build a DOM element: el("a", {href: "/x", class: "c"}, "text", child, ...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "html") node.innerHTML = v; // only for server-highlighted code
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (v === true) node.setAttribute(k, "");
      else node.setAttribute(k, v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  /** Replace a node's children; null, undefined and false children are left out. */
  function fill(node, ...children) {
    node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
    return node;
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  /** GET a JSON endpoint; a 4xx/5xx throws ApiError carrying the API's `detail`. */
  async function api(path, params) {
    const url = new URL(base + path, window.location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
    }
    let resp;
    try {
      resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch (e) {
      throw new ApiError(0, "the runbase server cannot be reached (" + e.message + ")");
    }
    return readJson(resp);
  }

  /** The JSON body of a response; a 4xx/5xx throws ApiError carrying the API's `detail`. */
  async function readJson(resp) {
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    if (!resp.ok) {
      let detail = body && body.detail !== undefined ? body.detail : resp.statusText;
      if (typeof detail !== "string") detail = JSON.stringify(detail);
      throw new ApiError(resp.status, detail);
    }
    return body;
  }

  /** An unsafe request (POST, PUT, DELETE) with a JSON body. On the team server it
   * carries the session's CSRF token (X-CSRF-Token), which cookie sessions need. */
  async function apiSend(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (config.csrf) headers["X-CSRF-Token"] = config.csrf;
    let resp;
    try {
      resp = await fetch(new URL(base + path, window.location.origin), {
        method,
        credentials: "same-origin",
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, "the runbase server cannot be reached (" + e.message + ")");
    }
    return readJson(resp);
  }

  /** Show `loading` in `node`, GET `path`, then fill `node` with what `render(body)`
   * returns; an error shows its message there instead. */
  async function load(node, loading, path, params, render) {
    fill(node, el("p", { class: "muted" }, loading));
    try {
      fill(node, render(await api(path, params)));
    } catch (e) {
      fill(node, el("div", { class: "error" }, e.message));
    }
  }

  function showError(node, err) {
    if (!node) return;
    if (!err) {
      node.hidden = true;
      node.textContent = "";
      return;
    }
    node.hidden = false;
    node.textContent = err.message || String(err);
  }

  // -- formatting --------------------------------------------------------------------

  function fmtValue(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      const a = Math.abs(v);
      if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3).replace(/\.?0+e/, "e");
      return String(Number(v.toPrecision(5)));
    }
    if (typeof v === "string") return v;
    if (typeof v === "object" && v.$object) return v.preview || v.$object;
    return JSON.stringify(v);
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "";
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + "s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m" + String(Math.round(s % 60)).padStart(2, "0") + "s";
    const h = Math.floor(m / 60);
    if (h < 48) return h + "h" + String(m % 60).padStart(2, "0") + "m";
    return Math.floor(h / 24) + "d" + (h % 24) + "h";
  }

  function parseTime(t) {
    if (t === null || t === undefined) return null;
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function fmtAgo(t) {
    const d = parseTime(t);
    if (!d) return "";
    const s = (Date.now() - d.getTime()) / 1000;
    if (s < 60) return Math.max(0, Math.round(s)) + "s ago";
    if (s < 3600) return Math.round(s / 60) + "m ago";
    if (s < 86400 * 2) return Math.round(s / 3600) + "h ago";
    if (s < 86400 * 60) return Math.round(s / 86400) + "d ago";
    return d.toISOString().slice(0, 10);
  }

  function fmtTime(t) {
    const d = parseTime(t);
    return d ? d.toLocaleString() : "";
  }

  function timeCell(t) {
    const d = parseTime(t);
    return el("time", { datetime: d ? d.toISOString() : null, title: fmtTime(t) }, fmtAgo(t));
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "?";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let x = n;
    while (x >= 1024 && i < units.length - 1) {
      x /= 1024;
      i += 1;
    }
    return (i === 0 ? String(x) : x.toFixed(x < 10 ? 1 : 0)) + " " + units[i];
  }

  function shortHash(h) {
    if (!h) return "-";
    return String(h).split(":").pop().slice(0, 12);
  }

  function statusBadge(status) {
    return el("span", { class: "status status-" + (status || "unknown") }, status || "?");
  }

  function runUrl(id) {
    return base + "/runs/" + encodeURIComponent(id);
  }

  function compareUrl(ids) {
    return base + "/compare?runs=" + ids.map(encodeURIComponent).join(",");
  }

  /** A `runbase ls --where/--sort` field for a key, backticked when it needs it. */
  function field(scope, key) {
    return scope + "." + (/^[A-Za-z_][A-Za-z0-9_/:-]*$/.test(key) ? key : "`" + key + "`");
  }

  /** Tabs: buttons `.tab[data-tab=K]` show `#pane-K`; the open tab lives in the URL hash. */
  function tabs(onShow) {
    const buttons = Array.from(document.querySelectorAll(".tabs .tab"));
    const opened = new Set();
    function show(name) {
      const visible = buttons.filter((b) => !b.hidden);
      if (!visible.some((b) => b.dataset.tab === name)) name = visible[0].dataset.tab;
      for (const b of buttons) b.classList.toggle("active", b.dataset.tab === name);
      for (const p of document.querySelectorAll(".pane")) p.hidden = p.id !== "pane-" + name;
      const first = !opened.has(name);
      opened.add(name);
      if (window.location.hash.slice(1) !== name) history.replaceState(null, "", "#" + name);
      onShow(name, first);
    }
    for (const b of buttons) b.addEventListener("click", () => show(b.dataset.tab));
    window.addEventListener("hashchange", () => show(window.location.hash.slice(1)));
    return { show, current: () => (buttons.find((b) => b.classList.contains("active")) || {}).dataset };
  }

  // -- charts ---------------------------------------------------------------------------

  const COLORS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
  ];

  /** A chart's card, titled `key`: {card, node}, the chart goes in node. */
  function chartCard(key) {
    const node = el("div", { class: "chart" });
    return { node, card: el("div", { class: "chart-card", dataset: { key } }, el("div", { class: "chart-title" }, key), node) };
  }

  /** An IntersectionObserver that calls `onVisible(target)` once per observed target,
   * when it comes near the viewport: charts load as they are scrolled to, so a page with
   * hundreds of series stays fast. */
  function onceVisible(onVisible) {
    const observer = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          if (!e.isIntersecting) continue;
          observer.unobserve(e.target);
          onVisible(e.target);
        }
      },
      { rootMargin: "300px" }
    );
    return observer;
  }

  /** The color of a run, the same in every chart and row of a page. A hash of the run's
   * id picks one of 20 hues (readable on the light and the dark background), so a run
   * keeps its color whatever else is shown and in whichever order; when that hue is
   * already another run's on this page, the next free one is taken (the page's first
   * 20 runs never share a color), and a run keeps the color it got for the page's life. */
  const RUN_COLORS = [
    ...COLORS,
    "#4e79a7", "#e15759", "#59a14f", "#b07aa1", "#9c755f",
    "#f28e2b", "#76b7b2", "#ff9da7", "#edc948", "#5fa2ce",
  ];
  const assigned = new Map(); // run id -> color, for this page
  const taken = new Set();
  function runColor(id) {
    const key = String(id);
    if (assigned.has(key)) return assigned.get(key);
    let h = 2166136261; // FNV-1a over the id's characters
    for (let i = 0; i < key.length; i++) {
      h ^= key.charCodeAt(i);
      h = Math.imul(h, 16777619);
    }
    let i = (h >>> 0) % RUN_COLORS.length;
    for (let probe = 0; probe < RUN_COLORS.length && taken.has(RUN_COLORS[i]); probe++) {
      i = (i + 1) % RUN_COLORS.length;
    }
    const color = RUN_COLORS[i];
    assigned.set(key, color);
    taken.add(color);
    return color;
  }

  /** Text for plotly (names, labels, tick and hover text): plotly reads <b>, <br>,
   * <a href> in them as markup and decodes entities, so entities keep the text as
   * written. In a hovertemplate, `%{...}` is a substitution: `template` breaks it. */
  function plotText(s, template) {
    const text = String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    return template ? text.replace(/%/g, "%\u200b") : text;
  }

  /** The API path of a media item's object: the `url` the media API gives (relative to
   * the API base, docs/api.md), or null when it is not one of its object routes (the
   * answer is not trusted to point elsewhere). The page's address: RB.base + the path. */
  function mediaPath(item) {
    const url = item ? item.url : null;
    return typeof url === "string" && /^runs\/[^?#]+\/media\/object\/[^/?#]+$/.test(url) && !url.includes("..") ? "/api/" + url : null;
  }

  /** Dark mode follows the OS setting (prefers-color-scheme, app.css): charts take
   * their text and grid colors from the page's CSS variables. */
  function chartTheme() {
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue("--fg").trim() || "#1d232b";
    const grid = css.getPropertyValue("--line").trim() || "#d8dee4";
    return { font: { color: fg }, xaxis: { gridcolor: grid, zerolinecolor: grid }, yaxis: { gridcolor: grid, zerolinecolor: grid } };
  }

  function plot(node, traces, layout, extra) {
    if (Array.from(node.children).some((c) => !c.classList.contains("plot-container"))) {
      Plotly.purge(node); // a message ("loading…") sits where the chart goes
      node.replaceChildren();
    }
    const full = Object.assign(
      {
        margin: { l: 55, r: 15, t: 30, b: 40 },
        font: { size: 11 },
        hovermode: "closest",
        paper_bgcolor: "rgba(0,0,0,0)",
        plot_bgcolor: "rgba(0,0,0,0)",
        legend: { orientation: "h", x: 0, y: -0.12, yanchor: "top" },
      },
      layout || {}
    );
    const theme = chartTheme();
    full.font = Object.assign({ size: 11 }, theme.font, (layout || {}).font || {});
    for (const ax of ["xaxis", "yaxis"]) full[ax] = Object.assign({}, theme[ax], full[ax] || {});
    // the mode bar only while the pointer is over the chart (plotly's "hover")
    return Plotly.react(node, traces, full, Object.assign({ responsive: true, displaylogo: false, displayModeBar: "hover" }, extra || {}));
  }

  /** Exponential moving average, debiased (as TensorBoard's smoothing slider). */
  function smooth(values, weight) {
    if (!weight) return values;
    const out = new Array(values.length);
    let last = 0;
    let n = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "number" || !Number.isFinite(v)) {
        out[i] = v;
        continue;
      }
      last = last * weight + (1 - weight) * v;
      n += 1;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  }

  /** Strict JSON writes NaN/Infinity as strings: plotly wants numbers or null. */
  function numbers(values) {
    return values.map((v) => (typeof v === "number" ? v : v === "Infinity" ? Infinity : v === "-Infinity" ? -Infinity : null));
  }

  function table(headers, rows, attrs) {
    return el(
      "table",
      attrs || { class: "grid" },
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c)))))
    );
  }

  function kvTable(pairs) {
    return el(
      "table",
      { class: "kv" },
      el("tbody", {}, pairs.filter((p) => p).map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))))
    );
  }

  function debounce(fn, ms) {
    let t = null;
    return (...args) => {
      clearTimeout(t);
      t = setTimeout(() => fn(...args), ms);
    };
  }

  return {
    config, base, el, fill, api, apiSend, ApiError, load, showError, fmtValue, fmtDuration, fmtAgo,
    fmtTime, timeCell, fmtBytes, shortHash, statusBadge, runUrl, compareUrl, field, tabs, COLORS,
    chartCard, onceVisible, plot, smooth, numbers, table, kvTable, debounce, parseTime,
    runColor, chartTheme, plotText, mediaPath,
  };
})();
