"""`onnxviz concepts`: learn a dictionary of concepts over a layer of a mining run, then mine them.

    onnxviz mine model.onnx photos/ --run runs/m --atlas-layers block_14 --atlas-per-image 64
    onnxviz concepts model.onnx --run runs/m --layer block_14 --method nmf --concepts 64

    onnxviz concepts model.onnx --run runs/m --layer block_14 --method sae --render all --param maco

Writes ``<run>/concepts/<layer>/<method><K>.json/.npz`` (the dictionary, settings and metrics) and,
unless ``--no-mine``, the concepts' dataset examples in ``<run>/concepts/<layer>/<method><K>/`` (the
concept set, a run directory of its own); ``--render`` adds each concept's feature visualization there
(``render/<layer>_<method><K>/concept_<k>.png`` + ``.json`` with its reliability check), like a unit's.
"""
from __future__ import annotations

import json

import click

from ..attribution.labels import caption
from ..concepts import METHODS, NMF_SOLVERS, NotEnoughVectors, learn_from_run, mine_concepts, mined_folder, name_concepts
from ..concepts.learn import MIN_VECTORS_PER_CONCEPT
from ..errors import OnnxVizError
from .options import ApiDefault, engine_options, load_model, meta_options, no_progress_option, seed_option


@click.command()
@click.argument("model_path", type=click.Path())
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="A mining run made with --atlas-layers LAYER (its sampled activation vectors are the data).")
@click.option("--layer", "layer_name", required=True, help="The layer whose activation vectors are factored.")
@click.option("--method", type=click.Choice(METHODS), default="nmf", show_default=True,
              help="nmf: non-negative matrix factorization (neuron groups); sae: TopK sparse autoencoder.")
@click.option("--concepts", "n_concepts", type=click.IntRange(1), default=None,
              help="Concepts to learn (default: 4x the layer's channels).")
@click.option("--nmf-solver", type=click.Choice(NMF_SOLVERS), default="cd", show_default=True,
              help="nmf: cd (scikit-learn's NMF over every vector) or minibatch (MiniBatchNMF, --epochs passes; "
              "much faster on 100k vectors).")
@click.option("--nmf-iterations", type=click.IntRange(1), default=ApiDefault("onnxviz.concepts.learn:learn", "max_iter"),
              show_default=True, help="nmf (cd): iterations at most; 10 fits block_7 of MobileNetV2 (106k vectors) to "
              "0.98 explained variance in about 95 s on 2 cores (docs/concepts.md).")
@click.option("--top-k", type=click.IntRange(1), default=None, help="sae: codes kept per position (default K/16).")
@click.option("--epochs", type=click.IntRange(1), default=20, show_default=True, help="sae, nmf --nmf-solver minibatch: passes over the vectors.")
@seed_option("the dictionary (and seed+1 for the stability check)")
@click.option("--no-stability", is_flag=True, help="Skip learning a second dictionary to measure stability.")
@click.option("--mine/--no-mine", "do_mine", default=True, show_default=True,
              help="Mine the concepts' dataset examples over the run's images (in the graph).")
@click.option("--top", default=16, show_default=True, type=click.IntRange(0), help="Top examples per concept.")
@click.option("--bottom", default=16, show_default=True, type=click.IntRange(0), help="Bottom examples per concept.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1), help="Images per batch.")
@click.option("--render", "render_which", default=None, metavar="all|0,3,5-9",
              help="Render these concepts' directions (FFT, or --param maco), each checked for reliability "
              "against its mined top examples.")
@click.option("--param", type=click.Choice(["fft", "maco"]), default="fft", show_default=True,
              help="With --render: the image parameterization (as in onnxviz render).")
@click.option("--steps", type=click.IntRange(1), default=ApiDefault("onnxviz.optvis.render:render", "steps"),
              show_default=True, help="With --render: optimization steps.")
@click.option("--size", type=click.IntRange(8), default=None,
              help="With --render: image size (default: what the layer's receptive field needs).")
@click.option("--render-batch", default=16, show_default=True, type=click.IntRange(1),
              help="With --render: concepts rendered per batch.")
@click.option("--render-seed", default=0, show_default=True, type=int, help="With --render: seed of the renders.")
@engine_options
@no_progress_option
@meta_options
def concepts(model_path, run_dir, layer_name, method, n_concepts, nmf_solver, nmf_iterations, top_k, epochs, seed, no_stability, do_mine, top,
             bottom, batch_size, render_which, param, steps, size, render_batch, render_seed, engine, address,
             gpus_per_worker, block_size, no_progress, **meta_kwargs):
    """Learn concepts (NMF or a TopK SAE) over --layer's activation vectors in --run, and mine their examples."""
    model, meta_opts = load_model(model_path, **meta_kwargs)
    name = model.layer(layer_name).name
    try:
        d = learn_from_run(run_dir, name, method=method, concepts=n_concepts, seed=seed, top_k=top_k, epochs=epochs,
                           stability=not no_stability, progress=not no_progress, solver=nmf_solver,
                           max_iter=nmf_iterations)
    except NotEnoughVectors as exc:
        need = exc.need or MIN_VECTORS_PER_CONCEPT * (n_concepts or 4 * model.layer(name).units)
        raise OnnxVizError(f"{exc}. Collect them with: {collect_command(model, model_path, run_dir, layer_name, need)}"
                           " (or ask for fewer --concepts)")
    click.echo(f"{d.concepts} {method} concepts of {name} from {d.settings['vectors']:,} vectors: "
               + ", ".join(f"{k} {v}" for k, v in d.metrics.items()))
    if d.labels is None and name_concepts(model, d, run_dir) is not None:
        click.echo("labels from the model's head: " + "; ".join(f"{k}: {caption(c)}" for k, c in
                                                                  enumerate(d.labels[:8])) + ("; ..." if d.concepts > 8 else ""))
    from ..concepts import name_units, unit_labels_path

    if not unit_labels_path(run_dir, name).exists() and name_units(model, run_dir, name) is not None:
        click.echo(f"labelled the {model.layer(name).units} units of {name} too (for the site)")
    if do_mine:
        ray = dict(address=address, gpus_per_worker=gpus_per_worker, block_size=block_size) if engine == "ray" else {}
        s = mine_concepts(model, d, run_dir, top=top, bottom=bottom, batch_size=batch_size, progress=not no_progress,
                          engine=engine, **ray)
        click.echo(f"mined {d.concepts} concepts over {s.images} images into {mined_folder(run_dir, d)}")
    if render_which:
        _render(model, d, run_dir, render_which, param=param, batch_size=render_batch, steps=steps, size=size,
                seed=render_seed, model_arg=model_path, meta_opts=meta_opts, progress=not no_progress)
    click.echo(json.dumps({"layer": name, "method": method, "concepts": d.concepts, "metrics": d.metrics}))


def _render(model, d, run_dir, which, progress, **kw) -> None:
    from ..concepts.render import concept_set, render_concepts
    from ..progress import bar
    from ..runs.render_jobs import parse_units

    chosen = None if which == "all" else parse_units(which)
    n = d.concepts if chosen is None else len(chosen)
    made, verdicts = 0, {}
    with bar(n, f"rendering {n} concepts", "concept", enabled=progress) as pbar:
        for written in render_concepts(model, d, run_dir, chosen, **kw):
            for png in written:
                rel = json.loads(png.with_suffix(".json").read_text())["reliability"]
                verdicts[rel["verdict"]] = verdicts.get(rel["verdict"], 0) + 1
            made += len(written)
            pbar.update(len(written) or kw["batch_size"])
    kept = f"; {n - made} kept from an earlier run" if made < n else ""
    checks = ", ".join(f"{v} {k}" for k, v in sorted(verdicts.items()))
    click.echo(f"rendered {made} concepts into {concept_set(run_dir, d).render}"
               + (f" (reliability: {checks})" if checks else "") + kept)


def collect_command(model, model_path, run_dir, layer: str, need: int) -> str:
    """The `onnxviz mine` line that samples ``need`` vectors of ``layer`` over the run's images: every
    position of the map if that is not enough, then augmented views (--atlas-views) for the rest."""
    from ..mining.results import open_results
    from ..runs import command

    res = open_results(run_dir)
    try:
        images = max(1, int((res.store.get("summary") or {}).get("images") or 1))
        source = res.config.get("source") or "IMAGES"
    finally:
        res.close()
    size = model.map_size(layer)
    positions = size[0] * size[1] if size else None
    per_image = -(-need // images)
    views = 0
    if positions and per_image > positions:
        per_image, views = positions, -(-need // (images * positions)) - 1
    return command("mine", model_path, source, run=run_dir, atlas_layers=layer, atlas_per_image=per_image,
                   atlas_views=views or None, overwrite=True)


COMMANDS = [concepts]
