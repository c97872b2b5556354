"""A standalone HTML page for an atlas: the big image, pannable (drag) and zoomable (wheel, +/-),
with each cell's count, top channels and supported classes shown on hover. No external files
besides the PNGs next to it, no network."""
from __future__ import annotations

import html
import json

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title><link rel="icon" href="data:,">
<style>
body{margin:0;font:14px system-ui,sans-serif;background:#111;color:#eee}
header{padding:8px 12px;background:#222}header a{color:#9cf}
#view{position:relative;overflow:hidden;height:calc(100vh - 90px);cursor:grab;background:#fff}
#view.drag{cursor:grabbing}
#stage{position:absolute;left:0;top:0;transform-origin:0 0}
#stage img{display:block;image-rendering:auto;user-select:none;-webkit-user-drag:none}
#tip{position:fixed;pointer-events:none;background:rgba(0,0,0,.85);padding:6px 8px;border-radius:4px;display:none;
max-width:320px;font-size:12px}
button{background:#333;color:#eee;border:1px solid #555;border-radius:3px;padding:2px 8px;cursor:pointer}
</style></head><body>
<header><b>__TITLE__</b> &middot; <span id="info"></span>
<button id="zin">+</button> <button id="zout">&minus;</button> <button id="reset">fit</button>
__TOGGLE__</header>
<div id="view"><div id="stage"><img id="atlas" src="__IMAGE__" alt="activation atlas of __LAYER__"></div></div>
<div id="tip"></div>
<script id="atlas-data" type="application/json">__DATA__</script>
<script>
const data = JSON.parse(document.getElementById('atlas-data').textContent);
const view = document.getElementById('view'), stage = document.getElementById('stage'), img = document.getElementById('atlas');
const tip = document.getElementById('tip');
const cells = {}; for (const c of data.cells) cells[c.row + ',' + c.col] = c;
document.getElementById('info').textContent = data.cells.length + ' cells, ' + data.samples + ' activation vectors, layout ' +
  data.layout.method + (data.layout.note ? ' (' + data.layout.note + ')' : '');
let s = 1, tx = 0, ty = 0;
function apply(){ stage.style.transform = `translate(${tx}px,${ty}px) scale(${s})`; }
function fit(){ const W = data.grid * data.cell_pixels; s = Math.min(view.clientWidth / W, view.clientHeight / W) || 1;
  tx = (view.clientWidth - W * s) / 2; ty = (view.clientHeight - W * s) / 2; apply(); }
function zoom(f, cx, cy){ const ns = Math.min(40, Math.max(0.05, s * f)); tx = cx - (cx - tx) * ns / s; ty = cy - (cy - ty) * ns / s; s = ns; apply(); }
view.addEventListener('wheel', e => { e.preventDefault(); const r = view.getBoundingClientRect();
  zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX - r.left, e.clientY - r.top); }, {passive: false});
let drag = null;
view.addEventListener('mousedown', e => { drag = [e.clientX - tx, e.clientY - ty]; view.classList.add('drag'); });
window.addEventListener('mouseup', () => { drag = null; view.classList.remove('drag'); });
window.addEventListener('mousemove', e => {
  if (drag) { tx = e.clientX - drag[0]; ty = e.clientY - drag[1]; apply(); }
  const r = view.getBoundingClientRect(); const px = (e.clientX - r.left - tx) / s, py = (e.clientY - r.top - ty) / s;
  const c = cells[Math.floor(py / data.cell_pixels) + ',' + Math.floor(px / data.cell_pixels)];
  if (!c || e.target !== img) { tip.style.display = 'none'; return; }
  let t = `cell (${c.row}, ${c.col}): ${c.count} vectors, |mean| ${c.norm.toFixed(2)}<br>top channels: ` +
    c.top_channels.map(u => u.channel + ' (' + u.activation.toFixed(2) + ')').join(', ');
  if (c.top_concepts) t += '<br>top concepts: ' + c.top_concepts.map(k => k.concept + (k.label ? ' ' + String(k.label).replace(/[&<>"']/g, ch => '&#' + ch.charCodeAt(0) + ';') : '') + ' (' + k.code.toFixed(2) + ')').join(', ');
  if (c.classes) t += '<br>supports: ' + c.classes.map(k => k.label + ' (' + k.support.toFixed(2) + ')').join(', ');
  tip.innerHTML = t; tip.style.display = 'block'; tip.style.left = (e.clientX + 14) + 'px'; tip.style.top = (e.clientY + 14) + 'px';
});
document.getElementById('zin').onclick = () => zoom(1.5, view.clientWidth / 2, view.clientHeight / 2);
document.getElementById('zout').onclick = () => zoom(1 / 1.5, view.clientWidth / 2, view.clientHeight / 2);
document.getElementById('reset').onclick = fit;
const toggle = document.getElementById('classes');
if (toggle) toggle.onchange = () => { img.src = toggle.checked ? data.class_image : data.image; };
window.atlasView = {zoom, fit, state: () => ({s, tx, ty})};
img.complete ? fit() : img.addEventListener('load', fit, {once: true});
</script></body></html>
"""


def atlas_html(data: dict, title: str = "", back: str = "") -> str:
    """The page for one atlas.json ``data`` (image paths relative to the page); ``back``: a link up."""
    slim = {k: v for k, v in data.items() if k != "cells"}
    slim["cells"] = [{k: v for k, v in c.items() if k != "mean_activation"} for c in data["cells"]]
    title = title or f"Activation atlas of {data['layer']}"
    toggle = ('<label><input type="checkbox" id="classes"> color by class</label>' if data.get("class_image") else "")
    if back:
        toggle += f' &middot; <a href="{html.escape(back)}">back</a>'
    page = _PAGE.replace("__TITLE__", html.escape(title)).replace("__LAYER__", html.escape(data["layer"]))
    page = page.replace("__IMAGE__", html.escape(data["image"])).replace("__TOGGLE__", toggle)
    return page.replace("__DATA__", json.dumps(slim).replace("</", "<\\/"))
