/* onnxviz site, the unit page: one page per layer (unit.html?u=12) draws any unit from data.js.
   Text goes in with textContent and attributes with setAttribute: model-supplied names are never parsed as HTML. */
(function () {
  "use strict";
  var V = window.onnxviz, el = V.el, fmt = V.fmt;
  var FFT_KINDS = {channel: 1, neuron: 1, class_logit: 1, class_prob: 1, objective: 1, concept: 1};
  var BADGE = {
    pass: ["trusted", "drives the unit like natural images"],
    suspect: ["suspect", "reaches the unit by a route its top dataset examples do not take"],
    unknown: ["not checked", "run with --run"]
  };

  window.onnxvizUnit = function (opts) {
    var data = window.ONNXVIZ_LAYER, root = opts.root;
    if (!data) return;
    var q = new URLSearchParams(window.location.search).get("u");
    if (q === null) q = (window.location.hash.match(/(\d+)$/) || [null, "0"])[1];
    var u = Number(q);
    if (!/^\d+$/.test(String(q).trim()) || u >= data.units_n) {
      var no = document.getElementById("nounit");
      no.hidden = false;
      no.textContent = "No unit " + q + " in " + data.layer + " (units 0 to " + (data.units_n - 1) + ").";
      document.getElementById("s-trust").hidden = true;
      document.getElementById("s-examples").hidden = true;
      return;
    }
    var row = data.units[u], d = data.detail[u] || {}, pics = d.p || [];
    function cmdOf(p) { return data.cmds[p.c] || ""; }
    function tmpl(name) { return V.fill(data.tmpl[name], data.mark, u); }
    function code(text) { var c = el("code", "cmd", text); c.title = "command that reproduces this"; return c; }
    function img(src, alt, size, cls) {
      var i = el("img", cls);
      i.setAttribute("src", root + src); i.setAttribute("alt", alt);
      if (size) { i.setAttribute("width", String(size)); i.setAttribute("height", String(size)); }
      return i;
    }
    function linked(src, alt, size) { var a = el("a"); a.setAttribute("href", root + src); a.appendChild(img(src, alt, size)); return a; }
    function show(id) { document.getElementById(id).hidden = false; }

    /* title, crumbs, neighbours */
    document.title = data.layer + ":" + u + " · " + document.title.replace(/^.*? · /, "");
    var what = data.base ? "concept " : "unit ";
    document.getElementById("unitno").textContent = what + u;
    document.getElementById("crumb-unit").textContent = what + u;
    if (row[3]) { var lab = document.getElementById("unitlabel"); lab.textContent = row[3]; lab.hidden = false; }
    [["prev", u - 1], ["next", u + 1]].forEach(function (n) {
      var a = document.getElementById(n[0]);
      if (n[1] >= 0 && n[1] < data.units_n) { a.setAttribute("href", "unit.html?u=" + n[1]); a.textContent = n[0] === "prev" ? "‹ unit " + n[1] : "unit " + n[1] + " ›"; a.hidden = false; }
    });

    function badge(rel) {
      var v = rel ? rel.v : "unknown", b = BADGE[v] || BADGE.unknown;
      var span = el("span", "badge badge-" + v, b[0] + ": " + b[1]);
      var title;
      if (!rel) title = "not checked: render it with --run RUN (a run with mining results) to compare the route by which it drives the unit with the unit's top dataset examples";
      else {
        title = b[0] + (rel.s !== null && rel.s !== undefined ? " (reliability score " + fmt(rel.s, 3) + (rel.t ? (v === "pass" ? " ≥ " : " < ") + fmt(rel.t, 3) : "") + ")" : "");
        if (rel.m) title += ": " + rel.m;
      }
      span.title = title;
      span.setAttribute("data-verdict", v);
      return span;
    }
    function numbers(p) {
      var parts = [];
      if (p.a !== undefined) parts.push("activation " + fmt(p.a));
      if (p.r !== undefined) parts.push(fmt(p.r, 3) + "× best example");
      if (p.seed !== undefined) parts.push("seed " + p.seed);
      if (p.steps !== undefined) parts.push(p.steps + " steps");
      return parts.join(" · ");
    }
    function figure(p, title, extra) {
      var f = el("figure", "pic big");
      f.setAttribute("data-kind", p.k);
      var pair = el("div", "picpair");
      pair.appendChild(linked(p.i, p.k + " of unit " + u, 224));
      if (extra) pair.appendChild(extra);
      f.appendChild(pair);
      var cap = el("figcaption");
      cap.appendChild(el("b", null, title));
      cap.appendChild(document.createTextNode(" "));
      cap.appendChild(el("span", "obj", p.o));
      cap.appendChild(el("br"));
      var nums = el("span", "nums", numbers(p));
      if (p.r !== undefined) nums.title = "visualization activation / best dataset example activation (" + data.statistic + ")";
      cap.appendChild(nums);
      if (p.dead) { cap.appendChild(el("br")); cap.appendChild(el("span", "warn", "dead unit: no gradient reached the image")); }
      cap.appendChild(el("br"));
      cap.appendChild(code(cmdOf(p)));
      f.appendChild(cap);
      return f;
    }
    function withBadge(f, rel) {  /* the badge goes first in the render's own caption */
      var cap = f.querySelector(":scope > figcaption");
      cap.insertBefore(badge(rel), cap.firstChild);
      return f;
    }
    function missing(title, text, command) {
      var f = el("div", "placeholder cell-missing");
      f.appendChild(el("b", null, title));
      f.appendChild(el("p", "small", text));
      if (command) f.appendChild(code(command));
      return f;
    }

    /* the trust row: FFT | MACO (+ importance) | accentuations of the top examples */
    var trust = document.getElementById("trust"), used = [];
    var fft = pics.filter(function (p) { return FFT_KINDS[p.k] && p.param !== "maco"; })[0];
    var maco = pics.filter(function (p) { return p.param === "maco" && p.k !== "diversity"; })[0];
    var cell = el("div", "cell cell-fft");
    if (fft) { used.push(fft); var ff = figure(fft, "FFT render"); withBadge(ff, fft.rel); cell.appendChild(ff); }
    else cell.appendChild(missing("No FFT render", "Lucid's parameterization (random phase and magnitude, 1/f decay):", data.tmpl.checked ? tmpl("checked") : tmpl("render")));
    trust.appendChild(cell);
    cell = el("div", "cell cell-maco");
    if (maco) {
      used.push(maco);
      var imp = null;
      if (maco.imp) { imp = el("figure", "imp"); imp.appendChild(linked(maco.imp, "importance map", 224)); imp.appendChild(el("figcaption", "small", "importance: the pixels the unit used (white: most)")); }
      var mf = figure(maco, "MACO render", imp);
      withBadge(mf, maco.rel);
      cell.appendChild(mf);
    } else cell.appendChild(missing("No MACO render", "Phase only, with the magnitude spectrum of natural photos:", tmpl("maco")));
    trust.appendChild(cell);
    cell = el("div", "cell cell-acc");
    if (d.x && d.x.length) {
      var box = el("div", "accs");
      d.x.forEach(function (p) {
        var f = el("figure", "acc");
        var pair = el("div", "picpair");
        if (p.ph) pair.appendChild(img(p.ph, "photo", 112, "photo"));
        pair.appendChild(el("span", "arrow", "→"));
        var a = el("a"); a.setAttribute("href", root + p.i); a.appendChild(img(p.i, "accentuated photo", 112)); pair.appendChild(a);
        f.appendChild(pair);
        var cap = el("figcaption", "small");
        if (p.acc && p.acc.ap !== null && p.a !== undefined) cap.appendChild(el("span", null, "activation " + fmt(p.acc.ap, 3) + " → " + fmt(p.a, 3)));
        else if (p.a !== undefined) cap.appendChild(el("span", null, "activation " + fmt(p.a, 3)));
        if (p.acc && p.acc.fd !== null) { cap.appendChild(el("br")); var fd = el("span", null, "feature distance " + fmt(p.acc.fd, 3)); fd.title = "how far the accentuated photo moved from the photo in the earlier layer's features"; cap.appendChild(fd); }
        if (p.rel) { cap.appendChild(el("br")); cap.appendChild(badge(p.rel)); }
        f.appendChild(cap);
        box.appendChild(f);
      });
      var af = el("figure", "pic big accbox");
      af.appendChild(box);
      var acap = el("figcaption");
      acap.appendChild(el("b", null, "Accentuations of the top examples"));
      acap.appendChild(el("br"));
      acap.appendChild(code(cmdOf(d.x[0])));
      af.appendChild(acap);
      cell.appendChild(af);
    } else if (data.tmpl.accentuate) cell.appendChild(missing("No accentuations", "Each top dataset example pushed to excite the unit, staying close to the photo:", tmpl("accentuate")));
    else cell.appendChild(missing("No accentuations", "They start from the unit's top dataset examples: mine dataset examples first (onnxviz mine MODEL PHOTOS --run RUN), then render with --accentuate top --run RUN.", ""));
    trust.appendChild(cell);

    /* every other picture of the unit (diverse images, neurons, ...) */
    var more = pics.filter(function (p) { return used.indexOf(p) < 0; });
    if (more.length) {
      show("s-more");
      var m = document.getElementById("more");
      more.forEach(function (p) { m.appendChild(withBadge(figure(p, p.k + (p.param === "maco" ? " (MACO)" : "")), p.rel)); });
    }

    /* dataset examples: the receptive field of the spatial maximum beside the whole image */
    var exBox = document.getElementById("examples");
    function cropView(src, box) {
      var w = data.frame[0], h = data.frame[1], bw = Math.max(box[2] - box[0], 1e-6), bh = Math.max(box[3] - box[1], 1e-6);
      var px = bw >= w ? 0 : 100 * box[0] / (w - bw), py = bh >= h ? 0 : 100 * box[1] / (h - bh);
      var v = el("div", "cropview");
      v.setAttribute("role", "img"); v.setAttribute("aria-label", "crop"); v.title = "receptive field of the spatial maximum";
      v.style.backgroundImage = "url(" + JSON.stringify(root + src) + ")";
      v.style.backgroundSize = (100 * w / bw).toFixed(2) + "% " + (100 * h / bh).toFixed(2) + "%";
      v.style.backgroundPosition = px.toFixed(2) + "% " + py.toFixed(2) + "%";
      return v;
    }
    function example(e) {
      var im = data.images[e[0]] || ["", ""], f = el("figure", "ex"), pair = el("div", "expair");
      if (e[4]) { var c = img(e[4], "crop", 96); c.title = "crop around the spatial maximum"; c.setAttribute("loading", "lazy"); pair.appendChild(c); }
      else if (e[2] && im[0] && data.frame) pair.appendChild(cropView(im[0], e[2]));
      if (im[0]) { var w = img(im[0], "image", 96, "whole"); w.title = "whole image"; w.setAttribute("loading", "lazy"); pair.appendChild(w); }
      f.appendChild(pair);
      var cap = el("figcaption");
      cap.appendChild(el("span", "act", fmt(e[1])));
      if (im[1]) { cap.appendChild(document.createTextNode(" ")); cap.appendChild(el("span", "exlabel", im[1])); }
      if (e[3]) { cap.appendChild(document.createTextNode(" ")); cap.appendChild(el("span", "small", "@" + e[3].join(","))); }
      f.appendChild(cap);
      return f;
    }
    if ((d.t && d.t.length) || (d.b && d.b.length)) {
      [["Positive (highest activation)", d.t], ["Negative (lowest activation)", d.b]].forEach(function (g) {
        if (!g[1] || !g[1].length) return;
        exBox.appendChild(el("h3", null, g[0]));
        var row = el("div", "examples");
        g[1].forEach(function (e) { row.appendChild(example(e)); });
        exBox.appendChild(row);
      });
      if (d.best !== undefined) exBox.appendChild(el("p", "small", "Best example activation (" + data.statistic + "): " + fmt(d.best)));
      if (data.mine) { var rp = el("p", "small", "Reproduce: "); rp.appendChild(code(data.mine)); exBox.appendChild(rp); }
    } else {
      var ph = el("div", "placeholder");
      ph.appendChild(el("p", null, data.mine ? "No dataset examples for this unit." : "No dataset examples for this layer (not mined)."));
      exBox.appendChild(ph);
    }

    /* spectrum: examples near quantiles of the unit's activation */
    if (d.s && d.s.length) {
      show("s-spectrum");
      document.getElementById("spectrum-note").textContent = "Images near quantiles of this unit's activation (" + data.statistic + ") over the dataset, from most negative to most positive: " + data.spectrum_note + ".";
      var sp = document.getElementById("spectrum");
      d.s.forEach(function (e) {
        var im = data.images[e[0]] || ["", ""], f = el("figure", "exs");
        if (im[0]) { var i = img(im[0], "example at " + e[2], 96, "whole"); i.setAttribute("loading", "lazy"); f.appendChild(i); }
        var cap = el("figcaption");
        cap.appendChild(el("span", "exlabel", e[2])); cap.appendChild(document.createTextNode(" ")); cap.appendChild(el("span", "act", fmt(e[1])));
        f.appendChild(cap);
        sp.appendChild(f);
      });
    }

    /* attribution: this channel's share in each attributed photo */
    var shares = (data.views || []).filter(function (v) { return v.channels && u < v.channels.length && v.channels[u] !== null; });
    if (shares.length) {
      show("s-attribution");
      var at = document.getElementById("attribution");
      shares.forEach(function (v) {
        var val = v.channels[u], rank = 1 + v.channels.filter(function (x) { return x !== null && x > val; }).length;
        var f = el("figure", "exs"), a = el("a");
        a.setAttribute("href", "index.html#attr-" + encodeURIComponent(v.name));
        if (v.img) a.appendChild(img(v.img, v.name, 112));
        f.appendChild(a);
        var cap = el("figcaption", null, v.name + " → " + (v.label || v.target));
        cap.appendChild(el("br")); cap.appendChild(el("span", "act", fmt(val))); cap.appendChild(document.createTextNode(" rank " + rank));
        f.appendChild(cap);
        at.appendChild(f);
      });
    }

    /* a concept: the units of its base layer that its direction weighs most, linked to their pages */
    if (data.base && d.cu && d.cu.length) {
      show("s-units");
      var us = document.getElementById("units");
      d.cu.forEach(function (c) {
        var a = el("a", "unitlink", data.base.layer + ":" + c[0]);
        a.setAttribute("href", "../" + encodeURIComponent(data.base.slug) + "/unit.html?u=" + c[0]);
        var f = el("figure", "exs");
        f.appendChild(a);
        f.appendChild(el("figcaption", "small", "weight " + fmt(c[1], 3)));
        us.appendChild(f);
      });
    }

    if (data.caricatures && data.caricatures.length) {
      show("s-caricatures");
      var ca = document.getElementById("caricatures");
      data.caricatures.forEach(function (p) { ca.appendChild(figure(p, "caricature")); });
    }
    document.body.setAttribute("data-ready", "1");
    window.onnxvizReady = window.performance ? performance.now() : Date.now();
  };
})();
