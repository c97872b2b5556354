"""`onnxviz inspect`: what is inside an ONNX file, for people and for scripts."""
from __future__ import annotations

import json

import click

from .model import load


def meta_options(f):
    """Options that override a model's preprocessing metadata (for foreign files that lack it)."""
    options = [
        click.option("--input-size", type=(int, int), default=None, help="Model input height and width."),
        click.option("--value-range", type=(float, float), default=None,
                     help="Range that pixel values 0..1 map to before mean/std (e.g. 0 255)."),
        click.option("--mean", type=str, default=None, help="Per-channel mean, comma-separated."),
        click.option("--std", type=str, default=None, help="Per-channel std, comma-separated."),
        click.option("--channel-order", type=click.Choice(["RGB", "BGR", "L"]), default=None),
        click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Text file with one class name per line."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def meta_overrides(input_size=None, value_range=None, mean=None, std=None, channel_order=None,
                   labels_file=None, **_ignored) -> dict:
    out = {"input_size": input_size, "value_range": value_range, "channel_order": channel_order}
    if mean:
        out["mean"] = [float(v) for v in mean.split(",")]
    if std:
        out["std"] = [float(v) for v in std.split(",")]
    if labels_file:
        with open(labels_file, encoding="utf-8") as fh:
            out["labels"] = [line.rstrip("\n") for line in fh if line.strip()]
    return {k: v for k, v in out.items() if v is not None}


def load_with_overrides(model_path, **kwargs):
    """onnxviz.load with the CLI's metadata overrides applied."""
    return load(model_path, **meta_overrides(**kwargs))


@click.command()
@click.argument("model_path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all-nodes", is_flag=True, help="List every node output, not only the interesting layers.")
@meta_options
def inspect(model_path, as_json, all_nodes, **kwargs):
    """List the layers of MODEL_PATH with ops, shapes and unit counts; inputs, opset, metadata."""
    m = load_with_overrides(model_path, **kwargs)
    info = m.describe()
    if all_nodes:
        info["nodes_detail"] = [lay.to_dict() for lay in m.nodes]
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    meta = m.meta
    click.echo(f"{info['path']}  ({info['file_size'] / 1e6:.1f} MB, opset {info['opset']}, {info['nodes']} nodes"
               f"{', ' + info['producer'] if info['producer'] else ''})")
    click.echo(f"input   {m.input_name} {list(m.input_shape)} layout {m.input_layout}")
    click.echo(f"outputs {', '.join(info['outputs'])}")
    conf = f", confidence {meta.confidence:.2f}" if meta.confidence is not None else ""
    click.echo(f"preprocessing ({meta.preprocessing_source}{conf}): size {meta.input_size[0]}x{meta.input_size[1]}"
               f"{' resize ' + str(meta.resize) if meta.resize else ''}, {meta.channel_order}, range "
               f"{list(meta.value_range)}, mean {list(meta.mean)}, std {list(meta.std)}, "
               f"labels {len(meta.labels) if meta.labels else 'none'}")
    for line in meta.evidence:
        click.echo(f"  evidence: {line}")
    click.echo("ops     " + ", ".join(f"{k} {v}" for k, v in info["ops"].items()))
    rows = m.nodes if all_nodes else m.layers
    click.echo(f"\n{len(rows)} {'nodes' if all_nodes else 'layers'}:")
    width = max((len(r.name) for r in rows), default=10)
    click.echo(f"  {'name':<{width}}  {'op':<18} {'shape':<22} {'units':>6}  tensor")
    for r in rows:
        shape = "x".join("N" if d is None and i == 0 else ("?" if d is None else str(d))
                         for i, d in enumerate(r.shape))
        alias = f"  (alias {', '.join(r.aliases)})" if r.aliases else ""
        click.echo(f"  {r.name:<{width}}  {r.op:<18} {shape:<22} {r.units:>6}  {r.tensor}{alias}")


COMMANDS = [inspect]
