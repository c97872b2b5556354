"""`onnxviz inspect`: what is inside an ONNX file, for people and for scripts."""
from __future__ import annotations

import json

import click

from .options import load_model, meta_options, warn_uncertain


@click.command()
@click.argument("model_path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all-nodes", is_flag=True, help="List every node output, not only the interesting layers.")
@meta_options
def inspect(model_path, as_json, all_nodes, **kwargs):
    """List the layers of MODEL_PATH with ops, shapes and unit counts; inputs, opset, metadata."""
    m, _ = load_model(model_path, **kwargs)
    info = m.describe()
    if all_nodes:
        info["nodes_detail"] = [lay.to_dict() for lay in m.tensors]
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    meta = m.meta
    click.echo(f"{info['path']}  ({info['file_size'] / 1e6:.1f} MB, opset {info['opset']}, {info['nodes']} nodes"
               f"{', ' + info['producer'] if info['producer'] else ''})")
    click.echo(f"input   {m.input_name} {list(m.input_shape)} layout {m.input_layout}")
    if getattr(m, "size_note", ""):  # a large fixed input made dynamic, or why not (graph/dynamic_size.py)
        click.echo(f"sizes   {m.size_note}")
    click.echo(f"outputs {', '.join(info['outputs'])}")
    conf = f", confidence {meta.confidence:.2f}" if meta.confidence is not None else ""
    click.echo(f"preprocessing ({meta.preprocessing_source}{conf}): size {meta.input_size[0]}x{meta.input_size[1]}"
               f"{' resize ' + str(meta.resize) if meta.resize else ''}, {meta.channel_order}, range "
               f"{list(meta.value_range)}, mean {list(meta.mean)}, std {list(meta.std)}, "
               f"labels {len(meta.labels) if meta.labels else 'none'}")
    for line in meta.evidence:
        click.echo(f"  evidence: {line}")
    for line in meta.conflicts:
        click.echo(f"  CONFLICT: {line}")
    warn_uncertain(m, model_path)
    click.echo("ops     " + ", ".join(f"{k} {v}" for k, v in info["ops"].items()))
    rows = m.tensors if all_nodes else m.layers
    click.echo(f"\n{len(rows)} {'nodes' if all_nodes else 'layers'}:")
    width = max((len(r.name) for r in rows), default=10)
    click.echo(f"  {'name':<{width}}  {'op':<18} {'shape':<22} {'units':>6}  tensor")
    for r in rows:
        shape = "x".join("N" if d is None and i == 0 else ("?" if d is None else str(d))
                         for i, d in enumerate(r.shape))
        alias = f"  (alias {', '.join(r.aliases)})" if r.aliases else ""
        click.echo(f"  {r.name:<{width}}  {r.op:<18} {shape:<22} {r.units:>6}  {r.tensor}{alias}")


COMMANDS = [inspect]
