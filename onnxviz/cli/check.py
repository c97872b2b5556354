"""`onnxviz check`: is a feature visualization reliable? (the path check of ``onnxviz.optvis.reliability``)

    onnxviz check models/mobilenet_v2.onnx runs/mnv2/render/features.7/channel_12.png --run runs/mnv2
    onnxviz check model.onnx runs/mnv2/render --run runs/mnv2       # every unit render in a folder

For each render (PNG with its JSON record beside it), compare how the unit's input is made up on
the render with the unit's top dataset examples in the mining run; print the verdict and store it
in the JSON under "reliability". Exit code 1 when any render is suspect.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import OnnxVizError
from ..preprocessing.images import load_image
from ..runs.render_records import read_record
from .options import device_option, load_model, meta_options, run_option


def _renders(paths) -> list:
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.png") if q.with_suffix(".json").exists()))
        elif p.suffix == ".json":
            out.append(p.with_suffix(".png"))
        else:
            out.append(p)
    return out


@click.command()
@click.argument("model_path", type=click.Path())
@click.argument("renders", nargs=-1, required=True, type=click.Path(exists=True))
@run_option("The mining run with the unit's top dataset examples.", required=True, exists=True)
@click.option("--top", "k", type=click.IntRange(2), default=8, show_default=True, help="Top examples to compare with.")
@device_option
@meta_options
def check(model_path, renders, run, k, device, **meta_kwargs):
    """Reliability check of renders: do they drive the unit like its top dataset examples?"""
    from ..optvis.reliability import check_with_run
    from ..runs.trust import update_record

    model, _ = load_model(model_path, **meta_kwargs)
    suspect = checked = 0
    for png in _renders(renders):
        js = png.with_suffix(".json")
        if not js.exists() or not png.exists():
            raise OnnxVizError(f"{png}: a render needs its PNG and JSON record side by side")
        rec = read_record(js)
        unit = rec.get("unit")
        if rec.get("kind") not in ("channel", "diversity") or not isinstance(unit, int) or png.stem.endswith(
                "_importance"):
            continue
        report = check_with_run(model, load_image(png, tuple(model.meta.input_size)), rec["layer"], unit, run, k=k,
                                device=device)
        update_record(png, reliability=report)
        checked += 1
        suspect += report["verdict"] != "pass"
        click.echo(f"{png}: {report['verdict']} (score {report['score']:.2f}; path similarity "
                   f"{report['path_similarity']:.2f} vs {report['natural_similarity']:.2f} among top examples, "
                   f"explained {report['explained']:.2f}, {report['ratio']}x the best example)")
    if not checked:
        raise OnnxVizError("no channel renders with a JSON record among the given paths")
    click.echo(f"{checked} checked, {suspect} suspect")
    if suspect:
        sys.exit(1)


COMMANDS = [check]
