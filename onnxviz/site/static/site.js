/* onnxviz site, shared helpers and the layer page: every unit of a layer (data.js) in a grid that
   draws only the rows on screen (fixed-size cards), sorted, searched by unit number or label. A layer's
   concept sets (data.sets) are drawn in the same grid with the same cards after its units (the "show"
   menu picks units, concepts or both); a concept's card opens its set's unit page.
   DOM nodes are built with textContent/setAttribute only: names and labels are never parsed as HTML. */
(function () {
  "use strict";
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(v, digits) {
    if (v === null || v === undefined || v === "") return "";
    return Number(v).toPrecision(digits || 4).replace(/\.?0+(e|$)/, "$1");
  }
  function fill(tmpl, mark, unit) { return tmpl ? tmpl.split(mark).join(String(unit)) : ""; }
  window.onnxviz = {el: el, fmt: fmt, fill: fill};

  var CARD_W = 146, CARD_H = 172, GAP = 8;  /* .vgrid .card in style.css */

  window.onnxvizLayer = function (opts) {
    var data = window.ONNXVIZ_LAYER;
    if (!data) return;
    var root = opts.root, step = opts.step || 64, grid = document.getElementById("grid");
    var sortSel = document.getElementById("sort"), filter = document.getElementById("filter");
    var renderedOnly = document.getElementById("rendered-only"), count = document.getElementById("count");
    var show = document.getElementById("show"), sets = data.sets || [];
    /* every card of the grid: [row, set] with set -1 for the layer's units, else an index into sets */
    var all = data.units.map(function (u) { return [u, -1]; });
    sets.forEach(function (s, i) { s.units.forEach(function (u) { all.push([u, i]); }); });
    var list = all, cols = 1, nodes = {}, drawn = 0, pending = false;

    function card(item) {
      var u = item[0], set = item[1] < 0 ? null : sets[item[1]];
      var a = el("a", "card" + (u[2] ? "" : " missing") + (set ? " concept" : ""));
      a.setAttribute("href", (set ? "../" + set.slug + "/" : "") + "unit.html?u=" + u[0]);
      if (set) { a.setAttribute("data-concept", String(u[0])); a.setAttribute("data-set", set.name); a.title = set.name + " concept " + u[0]; }
      else a.setAttribute("data-unit", String(u[0]));
      if (u[2]) {
        var img = el("img");
        img.setAttribute("src", root + u[2]);
        img.setAttribute("alt", (set ? "concept " : "unit ") + u[0]);
        img.setAttribute("loading", "lazy");
        img.setAttribute("decoding", "async");
        img.setAttribute("width", "144"); img.setAttribute("height", "144");
        a.appendChild(img);
      } else {
        var ph = el("span", "ph");
        ph.appendChild(el("span", null, "not rendered"));
        var cmd = fill((set ? set.tmpl : data.tmpl).render, data.mark, u[0]);
        var c = el("code", "cmd", cmd);
        c.title = cmd;
        ph.appendChild(c);
        a.appendChild(ph);
      }
      var cap = el("span", "cap");
      cap.appendChild(el("span", "unum", (set ? "c" : "") + u[0]));
      if (u[3]) { cap.appendChild(document.createTextNode(" ")); var l = el("span", "label", u[3]); l.title = u[3]; cap.appendChild(l); }
      if (u[1] !== null) { var s = el("span", "score", fmt(u[1], 3)); s.title = "top activation (" + data.statistic + ")"; cap.appendChild(s); }
      a.appendChild(cap);
      return a;
    }

    /* units first, then each concept set (scores of different sets are not comparable: sorted within) */
    function selected() {
      var q = filter.value.trim().toLowerCase().replace(/^#/, "").replace(/^c(?=\d+$)/, ""), mode = sortSel.value;
      var which = show ? show.value : "units";
      var out = all.filter(function (item) {
        var u = item[0];
        if (which === "units" ? item[1] >= 0 : which !== "all" && (item[1] < 0 || sets[item[1]].name !== which)) return false;
        if (renderedOnly.checked && !u[2]) return false;
        if (!q) return true;
        return String(u[0]).indexOf(q) === 0 || (u[3] && String(u[3]).toLowerCase().indexOf(q) >= 0);
      });
      var sign = mode === "score-desc" ? -1 : mode === "score-asc" ? 1 : 0, exact = /^\d+$/.test(q);
      out.sort(function (x, y) {
        var a = x[0], b = y[0];
        if (x[1] !== y[1]) return x[1] - y[1];
        if (exact && (String(a[0]) === q) !== (String(b[0]) === q)) return String(a[0]) === q ? -1 : 1;  /* that number first */
        if (sign) {
          if (a[1] === null && b[1] !== null) return 1;
          if (b[1] === null && a[1] !== null) return -1;
          if (a[1] !== null && b[1] !== null && a[1] !== b[1]) return sign * (a[1] - b[1]);
        }
        return a[0] - b[0];
      });
      return out;
    }

    function layout() {
      cols = Math.max(1, Math.floor((grid.clientWidth + GAP) / (CARD_W + GAP)));
      grid.style.height = (Math.ceil(list.length / cols) * (CARD_H + GAP)) + "px";
      draw();
    }

    /* the rows in view (plus a few), each card placed absolutely; cards that left the view are removed */
    function draw() {
      pending = false;
      var rowH = CARD_H + GAP, top = -grid.getBoundingClientRect().top;
      var over = Math.max(2, Math.ceil(step / cols / 2));  /* rows drawn beyond the screen, above and below */
      var first = Math.max(0, Math.floor(top / rowH) - over);
      var last = Math.floor((top + window.innerHeight) / rowH) + over;
      var from = first * cols, to = Math.min(list.length, (last + 1) * cols);
      var keep = {};
      for (var i = from; i < to; i++) {
        var item = list[i], key = item[1] + ":" + item[0][0], node = nodes[key];
        if (!node) { node = card(item); grid.appendChild(node); nodes[key] = node; }
        node.style.transform = "translate(" + ((i % cols) * (CARD_W + GAP)) + "px," + (Math.floor(i / cols) * rowH) + "px)";
        keep[key] = node;
      }
      for (var k in nodes) if (!keep[k]) grid.removeChild(nodes[k]);
      nodes = keep;
      drawn = to - from;
      grid.setAttribute("data-drawn", String(drawn));
    }
    function schedule() { if (!pending) { pending = true; window.requestAnimationFrame(draw); } }

    function update() {
      list = selected();
      for (var k in nodes) grid.removeChild(nodes[k]);
      nodes = {};
      var which = show ? show.value : "units", total = 0, noun = "units";
      all.forEach(function (item) {
        if (which === "all" || (which === "units" ? item[1] < 0 : item[1] >= 0 && sets[item[1]].name === which)) total++;
      });
      if (which === "all") noun = "units and concepts"; else if (which !== "units") noun = which + " concepts";
      var dynamic = filter.value.trim() !== "" || renderedOnly.checked;
      count.textContent = dynamic ? list.length + " of " + total + " " + noun : total + " " + noun;
      layout();
    }
    sortSel.addEventListener("change", update);
    filter.addEventListener("input", update);
    renderedOnly.addEventListener("change", update);
    if (show) show.addEventListener("change", update);
    filter.addEventListener("keydown", function (ev) {  /* Enter on a unit number opens its page */
      var q = filter.value.trim().replace(/^#/, "");
      if (ev.key === "Enter" && /^\d+$/.test(q) && Number(q) < data.units_n) window.location.href = "unit.html?u=" + Number(q);
    });
    window.addEventListener("scroll", schedule, {passive: true});
    window.addEventListener("resize", function () { layout(); });
    var params = new URLSearchParams(window.location.search);
    if (params.get("sort")) sortSel.value = params.get("sort");
    if (params.get("q")) filter.value = params.get("q");
    if (params.get("rendered") === "1") renderedOnly.checked = true;  /* a link to what has pictures */
    if (show && params.get("show")) { show.value = params.get("show"); if (!show.value) show.selectedIndex = 0; }
    update();
    document.body.setAttribute("data-ready", "1");
    window.onnxvizReady = window.performance ? performance.now() : Date.now();
  };
})();
