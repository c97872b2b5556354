"""`onnxviz mine`, `onnxviz mine-merge`, `onnxviz examples`: dataset examples from the command line."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import OnnxVizError
from ..mining.results import DEFAULT_STAT
from ..runs import command
from .options import (ApiDefault, engine_options, load_model, meta_options, no_progress_option, run_option,
                      seed_option, threads_option, warn_uncertain)

_MINE = "onnxviz.mining.mine:mine"


@click.command()
@click.argument("model_path", type=click.Path())
@click.argument("source", type=click.Path())
@run_option("Run directory: the results go to RUN/mining (what `onnxviz site --run` and `examples` read).",
            legacy=("--out",), required=True)
@click.option("--layers", default=None, help="Comma-separated layer names (default: all layers).")
@click.option("--top", default=ApiDefault(_MINE, "top"), show_default=True, type=click.IntRange(0),
              help="Top-k examples per unit.")
@click.option("--bottom", default=ApiDefault(_MINE, "bottom"), show_default=True, type=click.IntRange(0),
              help="Bottom-k examples per unit.")
@click.option("--batch-size", default=ApiDefault(_MINE, "batch_size"), show_default=True, type=click.IntRange(1),
              help="Images per batch.")
@click.option("--workers", default=None, type=click.IntRange(0),
              help="local: decoder threads (0: decode inline); ray: onnxruntime workers (default 2).")
@threads_option("onnxruntime (intra-op)")
@click.option("--decoder", type=click.Choice(["auto", "threads", "processes"]), 
              default=ApiDefault(_MINE, "decoder"), show_default=True,
              help="local: decode in threads or in --workers processes; auto: processes on 8+ cores (measured "
              "faster on 16 cores behind a GPU), threads on fewer (faster on 2).")
@click.option("--positions", type=click.Choice(["auto", "inline", "pass2"]), 
              default=ApiDefault(_MINE, "positions"), show_default=True,
              help="Argmax positions of the examples: with the statistics of every image (inline), or in a second "
              "pass over the example images only (pass2); auto: inline on CUDA or when most images will be examples.")
@click.option("--topk", type=click.Choice(["auto", "graph", "host"]),
              default=ApiDefault(_MINE, "topk"), show_default=True,
              help="Reduce each batch to its top/bottom-k candidates in the graph (only those reach the "
              "host; same results) or scan every image's statistics on the host; auto: graph on CUDA or at "
              "--batch-size 128+ (on Ray too, in each worker).")
@click.option("--shard", default=None, help="i/n: mine every n-th image starting at i (merge with mine-merge).")
@click.option("--limit", default=None, type=click.IntRange(1), help="Only the first N images.")
@click.option("--overwrite", is_flag=True, help="Start over instead of resuming an existing run.")
@no_progress_option
@click.option("--no-thumbs", is_flag=True, help="Do not write thumbnails of the example images at the end.")
@click.option("--spectrum", default=ApiDefault(_MINE, "spectrum"), show_default=True, type=click.IntRange(0),
              help="Images in the uniform sample behind each unit's spectrum of examples (quantiles; 0: none).")
@click.option("--atlas-layers", default=None, help="Comma-separated layers whose activation vectors are sampled "
              "for `onnxviz atlas`.")
@click.option("--atlas-per-image", default=ApiDefault(_MINE, "atlas_per_image"), show_default=True,
              type=click.IntRange(1),
              help="Random positions sampled per image and atlas layer.")
@click.option("--atlas-views", default=ApiDefault(_MINE, "atlas_views"), show_default=True, type=click.IntRange(0),
              help="Also sample the atlas layers in this many seeded random crops and flips of each image (one more "
              "forward pass each): more vectors for `onnxviz concepts` from few photos.")
@seed_option("the spectrum and atlas samplers")
@engine_options
@meta_options
def mine(model_path, source, run, layers, top, bottom, batch_size, workers, threads, decoder, positions, topk, shard,
         limit, overwrite,
         no_progress, no_thumbs, spectrum, atlas_layers, atlas_per_image, atlas_views, seed, engine, address,
         gpus_per_worker,
         block_size, **meta_kwargs):
    """Dataset examples: the top/bottom images of every unit of MODEL_PATH over SOURCE.

    SOURCE is a folder tree, a zip or tar archive of images, or a list file (one path per line).
    Running the same command again resumes an interrupted run.
    """
    from ..engines import mine as run_mine

    model, meta_opts = load_model(model_path, **meta_kwargs)
    warn_uncertain(model, model_path)
    cmd = command("mine", model_path, source, run=run, layers=layers, top=top, bottom=bottom, batch_size=batch_size,
                  shard=shard, limit=limit, spectrum=spectrum, atlas_layers=atlas_layers,
                  atlas_per_image=atlas_per_image if atlas_layers else None,
                  atlas_views=atlas_views if atlas_layers and atlas_views else None, seed=seed, **meta_opts)
    kw = dict(spectrum=spectrum, atlas_layers=atlas_layers, atlas_per_image=atlas_per_image, atlas_views=atlas_views,
              seed=seed,
              positions=positions, topk=topk)
    if engine == "ray":
        kw |= dict(address=address, gpus_per_worker=gpus_per_worker, block_size=block_size)
        workers = workers or 2
    else:
        kw |= dict(decoder=decoder)
    s = run_mine(model, source, run, engine=engine, layers=layers, top=top, bottom=bottom, batch_size=batch_size,
                 workers=workers, threads=threads, shard=shard, limit=limit, overwrite=overwrite,
                 progress=not no_progress, thumbs=not no_thumbs, command=cmd, **kw)
    click.echo(s.text())
    if not s.complete:
        sys.exit(130)


@click.command("mine-merge")
@click.argument("shard_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@run_option("Run directory of the merged result.", legacy=("--out",), required=True)
def mine_merge(shard_dirs, run):
    """Merge the runs of `onnxviz mine --shard i/n` into one (identical to an unsharded run)."""
    from ..mining import merge_runs

    s = merge_runs(list(shard_dirs), run, command=command("mine-merge", *shard_dirs, run=run))
    click.echo(s.text())


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="LAYER:UNIT")
@run_option("The mining run (what `onnxviz mine --run` wrote).", legacy=(), exists=True)
@click.option("--stat", type=click.Choice(["mean", "max"]), default=DEFAULT_STAT, show_default=True,
              help="Rank by the channel's mean over positions (what a channel render maximizes) or its maximum.")
@click.option("--bottom", "bottom", is_flag=True, help="The bottom examples instead of the top ones.")
@click.option("-k", "k", default=None, type=click.IntRange(1), help="How many (default: all stored).")
@click.option("--sheet", default=None, type=click.Path(dir_okay=False),
              help="Write a contact sheet PNG here ('-' for the default place under RUN/mining/sheets).")
@click.option("--whole", is_flag=True, help="Whole images in the sheet instead of receptive-field crops.")
def examples(args, run, stat, bottom, k, sheet, whole):
    """Print (or draw) the dataset examples of a unit of run --run: LAYER:UNIT, e.g. features.7:12."""
    from ..mining import open_results

    if len(args) == 2 and run is None:  # the old spelling: RUN_DIR LAYER:UNIT
        run, args = args[0], args[1:]
    if len(args) != 1 or run is None:
        raise click.UsageError("give the run and the unit: onnxviz examples --run RUN LAYER:UNIT")
    unit_spec = args[0]
    run_dir = run

    layer, sep, unit = unit_spec.rpartition(":")
    if not sep or not unit.isdigit():
        raise OnnxVizError(f"expected LAYER:UNIT (e.g. features.7:12), got {unit_spec!r}")
    r = open_results(run_dir)
    direction = "bottom" if bottom else "top"
    ex = r.examples(layer, int(unit), stat, direction, k)
    click.echo(f"{layer}:{unit} {direction} {len(ex)} by {stat}" + ("" if r.complete else " (run not complete)"))
    for e in ex:
        pos = f"({e.position[0]},{e.position[1]})" if e.position else "-"
        box = ",".join(str(int(round(v))) for v in e.box)
        click.echo(f"{e.rank:3d}  {e.activation:10.4g}  at {pos:9s} crop [{box}]  {e.key}")
    if sheet:
        path = r.default_sheet_path(layer, int(unit), stat, direction) if sheet == "-" else Path(sheet)
        r.contact_sheet(layer, int(unit), path, stat, direction, k, crops=not whole)
        click.echo(f"wrote {path}")


COMMANDS = [mine, examples, mine_merge]
