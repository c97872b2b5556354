/* Layer page: sort and filter all units of a layer (data in units.js), paginated client side.
   Builds DOM nodes with textContent/setAttribute only: names and labels are never parsed as HTML. */
(function () {
  "use strict";
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(v) { return v === null || v === undefined ? "" : Number(v).toPrecision(3).replace(/\.?0+(e|$)/, "$1"); }

  window.onnxvizLayer = function (opts) {
    var data = window.ONNXVIZ_UNITS;
    if (!data) return;
    var root = opts.root, grid = document.getElementById("grid"), pager = document.getElementById("pager");
    var sortSel = document.getElementById("sort"), filter = document.getElementById("filter");
    var renderedOnly = document.getElementById("rendered-only"), count = document.getElementById("count");
    var staticGrid = grid.innerHTML, staticPager = pager.innerHTML, page = 1;
    var size = data.page_size;

    function card(u) {
      var a = el("a", "card" + (u[2] ? "" : " missing"));
      a.setAttribute("href", "units/" + u[0] + ".html");
      a.setAttribute("data-unit", String(u[0]));
      if (u[2]) {
        var img = el("img");
        img.setAttribute("src", root + u[2]);
        img.setAttribute("alt", "unit " + u[0]);
        img.setAttribute("loading", "lazy");
        img.setAttribute("width", "160"); img.setAttribute("height", "160");
        a.appendChild(img);
      } else {
        var ph = el("span", "ph");
        ph.appendChild(el("span", null, "not rendered"));
        var c = el("code", "cmd", data.command.split(data.mark).join(String(u[0])));
        ph.appendChild(c);
        a.appendChild(ph);
      }
      var cap = el("span", "cap");
      cap.appendChild(el("span", "unum", u[0]));
      if (u[3]) { cap.appendChild(document.createTextNode(" ")); cap.appendChild(el("span", "label", u[3])); }
      if (u[1] !== null) { var s = el("span", "score", fmt(u[1])); s.title = "top activation"; cap.appendChild(s); }
      a.appendChild(cap);
      return a;
    }

    function selected() {
      var q = filter.value.trim().toLowerCase(), mode = sortSel.value;
      var list = data.units.filter(function (u) {
        if (renderedOnly.checked && !u[2]) return false;
        if (!q) return true;
        return String(u[0]) === q || String(u[0]).indexOf(q) === 0 || (u[3] && String(u[3]).toLowerCase().indexOf(q) >= 0);
      });
      if (mode === "score-desc" || mode === "score-asc") {
        var sign = mode === "score-desc" ? -1 : 1;
        list = list.slice().sort(function (a, b) {
          if (a[1] === null && b[1] === null) return a[0] - b[0];
          if (a[1] === null) return 1;
          if (b[1] === null) return -1;
          return sign * (a[1] - b[1]) || a[0] - b[0];
        });
      }
      return list;
    }

    function update() {
      var dynamic = filter.value.trim() !== "" || sortSel.value !== "index" || renderedOnly.checked;
      if (!dynamic) {
        grid.innerHTML = staticGrid; pager.innerHTML = staticPager; count.textContent = "";
        return;
      }
      var list = selected(), pages = Math.max(1, Math.ceil(list.length / size));
      if (page > pages) page = pages;
      grid.textContent = "";
      list.slice((page - 1) * size, page * size).forEach(function (u) { grid.appendChild(card(u)); });
      count.textContent = list.length + " of " + data.units.length + " units";
      pager.textContent = "";
      if (pages > 1) {
        for (var p = 1; p <= pages; p++) {
          var b = el(p === page ? "span" : "a", p === page ? "cur" : null, p);
          if (p !== page) {
            b.setAttribute("href", "#");
            b.addEventListener("click", (function (target) { return function (ev) { ev.preventDefault(); page = target; update(); window.scrollTo(0, 0); }; })(p));
          }
          pager.appendChild(b);
        }
      }
    }
    function reset() { page = 1; update(); }
    sortSel.addEventListener("change", reset);
    filter.addEventListener("input", reset);
    renderedOnly.addEventListener("change", reset);
    var params = new URLSearchParams(window.location.search);
    if (params.get("sort")) { sortSel.value = params.get("sort"); }
    if (params.get("q")) { filter.value = params.get("q"); }
    if (sortSel.value !== "index" || filter.value) update();
  };
})();
