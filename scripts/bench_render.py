"""Benchmark and quality check of `onnxviz render` on the real MobileNetV2 (all timings in one run).

    python scripts/bench_render.py --onnx models/mobilenet_v2.onnx [--threads 2] [--steps 30]

Per-step time (ms/step, one image, same transforms/param/optimizer) of
  1. onnxviz render on the converted module (torch_view, truncated after the layer),
  2. the same loop on the native torchvision module truncated at the same layer (`features[:k+1]`),
  3. the same loop on the full native module with a forward hook (what Lucent does),
  4. torch-lucent's render_vis on the native module, at the same size and upsampled to 224 (its default);
all at the render size (``fit_input=False``, like Lucent's fixed_image_size), plus onnxviz's default
for this fixed-size file (every transformed image resized to its 224 px input, like Lucent's default);
then batch vs one-at-a-time per unit, and the quality check: a channel's activation after rendering
vs at the start and vs every bundled real photo (foolbox's ImageNet photos + the package cat).
Writes the table to docs/bench_render.md. Lucent needs `pip install --no-deps torch-lucent
kornia==0.4.1 decorator` (its IPython import is stubbed here); it is skipped when missing.
"""
from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import click
import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))


class NativeView(nn.Module):
    """A native torch module as a render view: x -> {layer name: activation}."""

    def __init__(self, module: nn.Module, key: str, hook_on: nn.Module = None):
        super().__init__()
        self.module, self.key, self.hook_on = module, key, hook_on

    def forward(self, x):
        if self.hook_on is None:
            return {self.key: self.module(x)}
        store = {}
        handle = self.hook_on.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
        try:
            self.module(x)
        finally:
            handle.remove()
        return {self.key: store["a"]}


def time_render(model, objective, view, steps, size, batch=None, **kw):
    from onnxviz.optvis import render

    render(model, objective, steps=3, size=size, view=view, redirect_steps=0, batch=batch, **kw)  # warm-up
    best = None
    for _ in range(3):  # the machine is shared: keep the fastest of three runs
        r = render(model, objective, steps=steps, size=size, view=view, redirect_steps=0, batch=batch, **kw)
        best = r.record["ms_per_step"] if best is None else min(best, r.record["ms_per_step"])
    return best, r


def time_lucent(native, layer_attr, unit, steps, size, fixed):
    ipy = types.ModuleType("IPython")
    ipy.display = types.ModuleType("IPython.display")
    sys.modules.setdefault("IPython", ipy)
    sys.modules.setdefault("IPython.display", ipy.display)
    from lucent.optvis import param, render, transform

    def run(n):
        torch.manual_seed(0)
        t0 = time.perf_counter()
        render.render_vis(native, f"{layer_attr}:{unit}", param_f=lambda: param.image(size),
                          transforms=transform.standard_transforms, thresholds=(n,), show_image=False,
                          progress=False, fixed_image_size=size if fixed else None, verbose=False)
        return time.perf_counter() - t0

    run(3)
    return 1000 * min(run(steps) for _ in range(3)) / steps


@click.command()
@click.option("--onnx", "onnx_path", default=str(REPO / "models/mobilenet_v2.onnx"), show_default=True)
@click.option("--layer", default="block_7", show_default=True)
@click.option("--unit", default=12, show_default=True)
@click.option("--size", default=128, show_default=True)
@click.option("--steps", default=30, show_default=True, help="Timed steps per measurement.")
@click.option("--batch-size", "--batch", "batch", default=8, show_default=True, help="Channels rendered in one batch.")
@click.option("--quality-steps", default=256, show_default=True)
@click.option("--quality-units", default="12,3,50", show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--no-lucent", is_flag=True)
@click.option("--out", default=str(REPO / "docs/bench_render.md"), show_default=True)
def main(onnx_path, layer, unit, size, steps, batch, quality_steps, quality_units, threads, no_lucent, out):
    torch.set_num_threads(threads)
    import onnxviz
    from onnxviz.preprocessing.images import load_for_model, sample_image_path
    from onnxviz.optvis import objectives as obj
    from onnxviz.optvis import render

    from onnxviz import zoo as ex  # the same weights the ONNX file was exported from

    model = onnxviz.load(onnx_path)
    lay = model.layer(layer)
    native = ex.build(ex.get("mobilenet_v2")).model.eval()
    native.requires_grad_(False)
    index = int(lay.name.split(".")[1]) if lay.name.startswith("features.") else 7
    native_trunc = native.features[: index + 1]
    rows = []
    objective = obj.channel(layer, unit)

    conv_view = model.torch_view([lay.name])
    same = dict(fit_input=False)  # feed the render size itself: the file's 224 px input is fixed, and
    # render's default resizes every transformed image to it (timed in its own row below)
    t_conv, _ = time_render(model, objective, conv_view, steps, size, **same)
    t_ntrunc, _ = time_render(model, objective, NativeView(native_trunc, lay.name), steps, size, **same)
    t_nfull, _ = time_render(model, objective, NativeView(native, lay.name, hook_on=native.features[index]),
                             steps, size, **same)
    t_fed, r_fed = time_render(model, objective, conv_view, steps, size)
    fed = "x".join(str(v) for v in model.meta.input_size)
    rows.append(("onnxviz render, converted module (torch_view, truncated)", t_conv))
    rows.append(("same loop, native torchvision module truncated", t_ntrunc))
    rows.append(("same loop, native full module + forward hook", t_nfull))
    if r_fed.record["fit_input"]:
        rows.append((f"onnxviz render default: each step resized to the file's {fed} input", t_fed))
    lucent = {}
    if not no_lucent:
        try:
            attr = f"features_{index}"
            lucent["fixed"] = time_lucent(native, attr, unit, steps, size, fixed=True)
            lucent["224"] = time_lucent(native, attr, unit, steps, size, fixed=False)
            rows.append((f"torch-lucent render_vis, {size} px (fixed_image_size)", lucent["fixed"]))
            rows.append((f"torch-lucent render_vis, default (upsampled to 224)", lucent["224"]))
        except ImportError as exc:
            click.echo(f"lucent skipped: {exc}", err=True)

    units = list(range(batch))
    t_batch, _ = time_render(model, obj.channel(layer, units), conv_view, steps, size, **same)

    lines = [f"# Render benchmark: MobileNetV2 (real ImageNet weights), layer {layer} = {lay.name}",
             "",
             f"One run of `python scripts/bench_render.py` ({threads} CPU threads, torch {torch.__version__}, "
             f"{size} px fed to the model unless said, Adam lr 0.05, FFT + decorrelated param, Lucid's standard "
             f"transforms, fastest of 3 runs of {steps} timed steps after 3 warm-up steps, batch 1 unless said). "
             "The 2 cores are shared with other jobs: compare ratios, not absolute times.",
             "",
             "| what | ms/step | vs onnxviz |",
             "|---|---:|---:|"]
    for name, t in rows:
        lines.append(f"| {name} | {t:.1f} | {t / t_conv:.2f}x |")
    lines += ["", f"Batch of {batch} channels in one render: {t_batch:.1f} ms/step = {t_batch / batch:.1f} ms per "
              f"unit-step vs {t_conv:.1f} one at a time: **{t_conv / (t_batch / batch):.2f}x** faster per unit.", ""]
    if lucent:
        lines.append(f"onnxviz vs Lucent at the same {size} px: **{lucent['fixed'] / t_conv:.2f}x** faster per step "
                     f"(Lucent's default, upsampled to 224, vs onnxviz's default for this file, resized to "
                     f"{fed}: {lucent['224'] / t_fed:.2f}x).")
        lines.append("")

    # quality: activation after rendering vs start and vs every bundled real photo
    photos = [p for p, _ in ex.imagenet_photos()] + [sample_image_path()]
    x = model.prepare(np.stack([load_for_model(p, model.meta) for p in photos]))
    photo_means = model.channel_stats(x, [lay.name])[lay.name]["mean"]
    q_units = [int(u) for u in quality_units.split(",")]
    q = render(model, obj.channel(layer, q_units), steps=quality_steps, seed=0, view=conv_view, progress=False)
    lines += [f"Quality ({quality_steps} steps, {model.meta.input_size[0]} px, seed 0, one batch): channel mean "
              f"activation of the render vs its random start and vs the best of {len(photos)} real photos "
              "(foolbox ImageNet photos + the package cat), measured the same way (mean over positions).", "",
              "| unit | start | rendered | best real photo | rendered / start | rendered / best photo |",
              "|---:|---:|---:|---:|---:|---:|"]
    for i, u in enumerate(q_units):
        s, e = q.record["activation_start"][i], q.record["activation_end"][i]
        best = float(photo_means[:, u].max())
        ratio = lambda a, b: f"{a / b:.1f}x" if a > 0 and b > 0 else f"n/a ({a:+.3f} vs {b:+.3f})"  # noqa: E731
        lines.append(f"| {u} | {s:.3f} | {e:.3f} | {best:.3f} | {ratio(e, s)} | {ratio(e, best)} |")
    from onnxviz.preprocessing.images import save_image

    for i, u in enumerate(q_units):
        save_image(q.images[i], REPO / "runs" / "bench_render" / f"{lay.name}_{u}.png")
    text = "\n".join(lines) + "\n"
    Path(out).write_text(text)
    click.echo(text)


if __name__ == "__main__":
    main()
