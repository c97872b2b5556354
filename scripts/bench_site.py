#!/usr/bin/env python
"""Benchmark the static site on a MobileNetV2 demo-like run: size, files, and how fast a 1,280-unit
layer page and a unit page are usable in headless Chromium, against the site of a baseline commit
built from the same run in the same process.

    python scripts/bench_site.py                          # models/mobilenet_v2.onnx, 48 photos, baseline c926c0d
    python scripts/bench_site.py --images 200 --keep /tmp/bench_site --out docs/bench_site.md
    python scripts/bench_site.py --no-baseline

The run is made like scripts/demo.sh does, only smaller: the real pretrained MobileNetV2
(scripts/export.py mobilenet_v2, weights from a pip package), every layer mined over real photos
(scripts/collect_photos.py, the Python-package ones) with --top 8 --bottom 8, a few channels of
features.18 (1,280 channels, the last conv) rendered with few steps, plus a MACO render checked
against the run and two accentuations of the top examples. The baseline is onnxviz/site at
--baseline-ref (``git show``, loaded as a package beside the current one; the rest of onnxviz is
the current code): one HTML page per unit, the way the site was before it read per-layer data.

Browser timings (file:// URLs, a fresh page each time, median of --repeat; from navigation start):
  ready   the page shows its units / its unit and answers input (the site's data-ready mark;
          DOMContentLoaded for the static baseline pages)
  load    the load event (images in view included)
  search  typing a unit number (1279) in the layer page's search box until that unit's card is there
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
LAYER = "features.18"  # MobileNetV2's last conv: 1,280 channels
UNIT = 1279
CHROMIUM = "/usr/bin/chromium"


def make_run(model_path: Path, work: Path, n_images: int, steps: int, photos_dir=None) -> Path:
    """Mine every layer over real photos and render a few units of LAYER, like scripts/demo.sh (smaller).

    ``photos_dir``: take the photos from there (e.g. the demo's data/photos) instead of the packages."""
    import onnxviz
    from collect_photos import collect
    from onnxviz.mining import mine
    from onnxviz.runs import render_jobs as R
    from onnxviz.runs.accentuations import accentuate

    if photos_dir:
        photos = sorted(p for p in Path(photos_dir).iterdir() if p.is_file())
    else:
        photos = collect(work / "photos_all")
    photos = photos[:n_images]
    folder = work / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for p in photos:
        shutil.copy(p, folder / p.name)
    run = work / "run"
    m = onnxviz.load(model_path)
    t = time.perf_counter()
    mine(m, folder, run, top=8, bottom=8, batch_size=16, progress=False)
    print(f"mined {len(photos)} photos, all {len(m.layers)} layers: {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    kw = dict(out=run / "render", model_arg=str(model_path), steps=steps)
    for _ in R.units(m, LAYER, list(range(8)), batch_size=8, **kw):
        pass
    R.target(m, f"{LAYER}:0", param="maco", runs=run, progress=False, **kw)
    accentuate(m, f"{LAYER}:0", runs=run, k=2, progress=False, **kw)
    print(f"rendered 8 channels, a MACO render, 2 accentuations: {time.perf_counter() - t:.0f} s", flush=True)
    return run


def baseline_package(ref: str, work: Path):
    """onnxviz/site as it was at ``ref``, importable as onnxviz._site_baseline (None if git cannot give it)."""
    try:
        names = subprocess.run(["git", "ls-tree", "-r", "--name-only", ref, "onnxviz/site"], cwd=REPO, check=True,
                               capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"no baseline: git cannot list onnxviz/site at {ref}: {exc}", file=sys.stderr)
        return None
    root = work / "site_baseline"
    for name in names:
        dest = root / Path(name).relative_to("onnxviz/site")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(subprocess.run(["git", "show", f"{ref}:{name}"], cwd=REPO, check=True,
                                        capture_output=True).stdout)
    spec = importlib.util.spec_from_file_location("onnxviz._site_baseline", root / "__init__.py",
                                                  submodule_search_locations=[str(root)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def folder_stats(site: Path) -> dict:
    files = [p for p in site.rglob("*") if p.is_file()]
    img = [p for p in files if p.relative_to(site).parts[0] == "img"]
    total = sum(p.stat().st_size for p in files)
    images = sum(p.stat().st_size for p in img)
    return {"files": len(files), "files_no_img": len(files) - len(img), "bytes": total, "bytes_no_img": total - images}


def browser_times(site: Path, layer_page: str, unit_page: tuple, repeat: int, baseline: bool) -> dict:
    """Median times (ms from navigation start) of the layer page, a search, and the unit page (path, query)."""
    from playwright.sync_api import sync_playwright

    ready_js = ("() => { const n = performance.getEntriesByType('navigation')[0];"
                " return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd,"
                " ready: window.onnxvizReady || n.domContentLoadedEventEnd,"
                " examples: document.querySelectorAll('.ex').length}; }")
    search_js = ("(q) => { const f = document.getElementById('filter'); const t = performance.now(); f.value = q;"
                 " f.dispatchEvent(new Event('input'));"
                 " const ok = !!document.querySelector(`#grid .card[data-unit='${q}']`);"
                 " return ok ? performance.now() - t : null; }")
    out = {"layer": [], "unit": [], "search": [], "layer_load": [], "unit_load": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            for _ in range(repeat):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto((site / layer_page).as_uri(), wait_until="load")
                if not baseline:
                    page.wait_for_selector("body[data-ready='1']")
                t = page.evaluate(ready_js)
                out["layer"].append(t["ready"])
                out["layer_load"].append(t["load"])
                out["search"].append(page.evaluate(search_js, str(UNIT)))
                page.goto((site / unit_page[0]).as_uri() + unit_page[1], wait_until="load")  # as_uri would quote '?'
                if not baseline:
                    page.wait_for_selector("body[data-ready='1']")
                t = page.evaluate(ready_js)
                assert t["examples"] > 0, f"{unit_page}: no dataset examples shown"
                out["unit"].append(t["ready"])
                out["unit_load"].append(t["load"])
                page.close()
        finally:
            browser.close()
    return {k: statistics.median(v) if all(x is not None for x in v) else None for k, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "mobilenet_v2.onnx"))
    ap.add_argument("--images", type=int, default=48, help="Real photos to mine (the Python packages ship about 40).")
    ap.add_argument("--photos", default=None, help="Folder of photos to mine (default: those in Python packages).")
    ap.add_argument("--steps", type=int, default=16, help="Render steps (few: the pictures are not the point here).")
    ap.add_argument("--run", default=None, help="Use this run directory instead of making one.")
    ap.add_argument("--baseline-ref", default="c926c0d", help="git commit whose onnxviz/site is the baseline.")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", default=None, help="Keep the work folder (run, sites) here.")
    ap.add_argument("--out", default=None, help="Also write the table to this Markdown file.")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    model = Path(args.model)
    if not model.exists():
        export = [sys.executable, str(REPO / "scripts" / "export.py"), "mobilenet_v2", "--out", str(model.parent)]
        subprocess.run(export, check=True)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_site_"))
    work.mkdir(parents=True, exist_ok=True)
    import onnxviz
    from onnxviz.paths import slug
    from onnxviz.site import build_site

    run = Path(args.run) if args.run else make_run(model, work, args.images, args.steps, args.photos)
    m = onnxviz.load(model)
    assert m.layer(LAYER).units == 1280
    rows = []
    sites = [("this branch", build_site, False)]
    old = None if args.no_baseline else baseline_package(args.baseline_ref, work)
    if old is not None:
        sites.insert(0, (f"baseline {args.baseline_ref}", old.build_site, True))
    for name, build, baseline in sites:
        out = work / ("site_baseline_out" if baseline else "site")
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        build(m, out, run, model_arg=str(model))
        seconds = time.perf_counter() - t
        s = slug(LAYER)
        unit_page = (f"layers/{s}/units/{UNIT}.html", "") if baseline else (f"layers/{s}/unit.html", f"?u={UNIT}")
        times = browser_times(out, f"layers/{s}/index.html", unit_page, args.repeat, baseline)
        rows.append(dict(name=name, build_s=seconds, **folder_stats(out), **times))
        print(json.dumps(rows[-1]), flush=True)

    table = render_table(rows, m)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def render_table(rows: list, m) -> str:
    units = sum(int(lay.units or 0) for lay in m.layers)
    lines = [f"MobileNetV2 ({len(m.layers)} layers, {units:,} units); layer page: {LAYER} (1,280 units); "
             f"unit page: {LAYER}:{UNIT}; headless Chromium, file:// URLs, median of the repeats.", "",
             "| site | files | files without img/ | MB without img/ | MB with img/ | build s | layer page ready ms "
             "| layer load ms | search 1279 ms | unit page ready ms | unit load ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def ms(v):
        return "n/a" if v is None else f"{v:.0f}"

    for r in rows:
        lines.append(f"| {r['name']} | {r['files']:,} | {r['files_no_img']:,} | {r['bytes_no_img'] / 1e6:.1f} "
                     f"| {r['bytes'] / 1e6:.1f} | {r['build_s']:.0f} | {ms(r['layer'])} | {ms(r['layer_load'])} "
                     f"| {ms(r['search'])} | {ms(r['unit'])} | {ms(r['unit_load'])} |")
    if len(rows) == 2:
        b, n = rows
        lines += ["", "| ratio (baseline / this branch) | value |", "|---|---:|",
                  f"| files | {b['files'] / n['files']:.1f}x |",
                  f"| size without img/ | {b['bytes_no_img'] / n['bytes_no_img']:.1f}x |",
                  f"| size with img/ | {b['bytes'] / n['bytes']:.1f}x |",
                  f"| build time | {b['build_s'] / n['build_s']:.1f}x |"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
