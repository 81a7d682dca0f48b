"""The flame graph page: one self-contained HTML template (inline CSS and JS, no fetches).

Kept as a Python string so it ships with the package without package-data rules.
Placeholders: __TITLE__, __SUBTITLE__, __WARNINGS__ (HTML), __DATA__ (JSON: the tree,
kind colours and labels). The tree node shape is {n: name, f: "file:line", k: kind,
m: module, v: bytes, c: count, ch: [children]}.
"""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>__TITLE__</title>
<style>
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       background: #1c1c1c; color: #ddd; }
header { padding: 8px 12px; border-bottom: 1px solid #333; }
h1 { font-size: 16px; margin: 0 0 2px 0; }
.sub { color: #aaa; }
.warn { background: #5a3a00; color: #ffd27f; padding: 6px 12px; }
.bar { display: flex; gap: 14px; align-items: center; padding: 6px 12px; flex-wrap: wrap; }
.legend span.sw { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
                  vertical-align: -2px; border-radius: 2px; }
.legend { display: flex; gap: 12px; }
input#search { background: #111; color: #eee; border: 1px solid #555; padding: 3px 6px;
               width: 240px; }
button { background: #333; color: #eee; border: 1px solid #555; padding: 3px 8px;
         cursor: pointer; }
#graph { position: relative; margin: 4px 12px 12px 12px; }
.fr { position: absolute; height: 17px; box-sizing: border-box; overflow: hidden;
      white-space: nowrap; font: 11px/17px ui-monospace, Menlo, Consolas, monospace;
      color: #111; padding: 0 3px; border-right: 1px solid #1c1c1c;
      border-bottom: 1px solid #1c1c1c; cursor: pointer; }
.fr.dim { opacity: 0.35; }
.fr.hit { outline: 2px solid #fff; outline-offset: -2px; }
.fr.anc { opacity: 0.6; }
#tip { position: fixed; display: none; background: #000; color: #eee; border: 1px solid #666;
       padding: 6px 8px; pointer-events: none; max-width: 640px; z-index: 10;
       font: 12px/1.4 ui-monospace, Menlo, Consolas, monospace; }
#status { color: #aaa; }
</style></head>
<body>
<header><h1>__TITLE__</h1><div class="sub">__SUBTITLE__</div></header>
__WARNINGS__
<div class="bar">
  <div class="legend" id="legend"></div>
  <input id="search" type="search" placeholder="search function or file (regex)">
  <button id="reset">reset zoom</button>
  <span id="status"></span>
</div>
<div id="graph"></div>
<div id="tip"></div>
<script id="profile-data" type="application/json">__DATA__</script>
<script>
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("profile-data").textContent);
  const ROOT = DATA.tree, COLOURS = DATA.colours, LABELS = DATA.labels, MARKS = DATA.marks;
  const ROW = 18, MIN_PX = 0.5;
  const graph = document.getElementById("graph"), tip = document.getElementById("tip");
  const status = document.getElementById("status"), search = document.getElementById("search");
  let focus = ROOT, query = null;

  function parents(node, parent) {
    node.p = parent;
    for (const c of node.ch || []) parents(c, node);
  }
  parents(ROOT, null);

  function fmt(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0, v = n;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : v) + " " + u[i];
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, ch => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
                                                 '"': "&quot;"}[ch]));
  }
  function shade(hex, name) {   // same hue per kind, lightness varied by name
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    const f = 0.85 + (h % 30) / 100;
    const rgb = [1, 3, 5].map(i => Math.min(255, Math.round(parseInt(hex.substr(i, 2), 16) * f)));
    return "rgb(" + rgb.join(",") + ")";
  }
  function matches(node) {
    return query !== null && (query.test(node.n) || query.test(node.f || ""));
  }

  function render() {
    graph.textContent = "";
    const width = graph.clientWidth || 1000;
    const chain = [];
    for (let a = focus.p; a; a = a.p) chain.unshift(a);
    let depth = 0, maxDepth = 0;
    const frag = document.createDocumentFragment();
    for (const a of chain) {   // ancestors of the zoomed frame: full width, faded
      if (a !== ROOT) frag.appendChild(box(a, 0, width, depth++, "anc"));
      else depth = 0;
    }
    let matched = 0;
    function walk(node, x, w, d) {
      if (w < MIN_PX) return;
      if (node !== ROOT) {
        const hit = matches(node);
        frag.appendChild(box(node, x, w, d, hit ? "hit" : (query ? "dim" : "")));
        maxDepth = Math.max(maxDepth, d);
        d++;
      }
      let cx = x;
      for (const c of node.ch || []) {
        const cw = node.v ? w * c.v / node.v : 0;
        walk(c, cx, cw, d);
        cx += cw;
      }
    }
    walk(focus, 0, width, depth);
    if (query) {   // bytes under matching frames, counted once per branch
      (function sum(node) {
        if (node !== ROOT && matches(node)) { matched += node.v; return; }
        for (const c of node.ch || []) sum(c);
      })(focus);
      status.textContent = "matched " + fmt(matched) + " (" +
        (focus.v ? (100 * matched / focus.v).toFixed(1) : "0") + "% of the view)";
    } else {
      status.textContent = focus === ROOT ? "" : "zoomed on " + focus.n;
    }
    graph.style.height = ((maxDepth + 1) * ROW + 4) + "px";
    graph.appendChild(frag);
  }

  function box(node, x, w, d, cls) {
    const el = document.createElement("div");
    el.className = "fr " + (cls || "");
    el.style.left = x + "px";
    el.style.width = Math.max(w, 1) + "px";
    el.style.top = (d * ROW) + "px";
    el.style.background = shade(COLOURS[node.k], node.n);
    el.dataset.kind = node.k;
    if (w > 30) el.textContent = MARKS[node.k] + " " + node.n;
    el._node = node;
    return el;
  }

  graph.addEventListener("mousemove", ev => {
    const node = ev.target._node;
    if (!node) { tip.style.display = "none"; return; }
    const share = ROOT.v ? (100 * node.v / ROOT.v).toFixed(2) : "0";
    tip.innerHTML = "<b>" + esc(MARKS[node.k] + " " + node.n) + "</b><br>" +
      (node.f ? esc(node.f) + "<br>" : "") + (node.m ? esc(node.m) + "<br>" : "") +
      esc(LABELS[node.k]) + " frame<br>" + fmt(node.v) + " (" + node.v.toLocaleString() +
      " bytes, " + share + "% of all), " + node.c.toLocaleString() + " allocations";
    tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 420) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
  });
  graph.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  graph.addEventListener("click", ev => {
    const node = ev.target._node;
    if (node) { focus = node === focus && node.p ? node.p : node; render(); }
  });
  document.getElementById("reset").addEventListener("click", () => { focus = ROOT; render(); });
  search.addEventListener("input", () => {
    const text = search.value.trim();
    try { query = text ? new RegExp(text, "i") : null; }
    catch (e) { query = new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i"); }
    render();
  });
  window.addEventListener("resize", render);

  const legend = document.getElementById("legend");
  for (const k of Object.keys(COLOURS)) {
    const item = document.createElement("span");
    item.innerHTML = '<span class="sw" style="background:' + COLOURS[k] + '"></span>' +
      esc(MARKS[k] + " " + LABELS[k]);
    item.dataset.kind = k;
    legend.appendChild(item);
  }
  const initial = /[#&]search=([^&]*)/.exec(location.hash);   // shareable: page.html#search=foo
  if (initial) {
    search.value = decodeURIComponent(initial[1]);
    search.dispatchEvent(new Event("input"));
  } else {
    render();
  }
})();
</script>
</body></html>
"""
