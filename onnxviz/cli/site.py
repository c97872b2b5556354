"""`onnxviz site` (build the static site) and `onnxviz serve` (serve it on 127.0.0.1)."""
from __future__ import annotations


import click

from .options import ApiDefault, load_model, meta_options, run_option


@click.command("site")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@run_option("Run directory with render/, mining/, attribution/ and atlas/ (what `onnxviz render`, `mine`, "
            "`attribute` and `atlas` wrote).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder to write the site into.")
@click.option("--page-size", type=click.IntRange(1, 100000), default=64, show_default=True,
              help="Units the layer grid draws beyond the rows on screen (it draws only what is in view).")
@click.option("--examples", "examples_per_unit", type=click.IntRange(0, 1000), default=8, show_default=True,
              help="Dataset examples shown per unit (positive and negative each).")
@click.option("--render-missing", is_flag=True,
              help="Render units that have no visualization yet (via the render API) before building.")
@click.option("--layers", "render_layers", default=None,
              help="With --render-missing: comma-separated layers to render (default: all).")
@click.option("--steps", type=click.IntRange(1), show_default=True,
              default=ApiDefault("onnxviz.optvis.render:render", "steps"),
              help="With --render-missing: optimization steps.")
@meta_options
def site(model, run, out, page_size, examples_per_unit, render_missing, render_layers, steps, **meta_kwargs):
    """Build a browsable static site (model > layer > unit) for MODEL and its run directory."""
    from ..runs.render_jobs import render_missing as _render_missing
    from ..site import build_site

    m, meta_opts = load_model(model, **meta_kwargs)
    if render_missing:
        if run is None:
            raise click.UsageError("--render-missing needs --run (where the renders are written)")
        layers = [s.strip() for s in render_layers.split(",")] if render_layers else None
        n = _render_missing(m, run, layers=layers, steps=steps, model_arg=model,
                            meta_opts=meta_opts)
        click.echo(f"rendered {n} missing units")
    index = build_site(m, out, run, page_size=page_size, examples_per_unit=examples_per_unit, model_arg=model,
                       run_arg=run, meta_opts=meta_opts)
    click.echo(f"site written to {index.parent} (open {index}, or `onnxviz serve {out}`)")


@click.command("serve")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (default: local only).")
def serve(directory, port, host):
    """Serve a built site folder over HTTP (any static web server works as well)."""
    from ..site import serve as _serve

    try:
        _serve(directory, host=host, port=port)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc))


COMMANDS = [site, serve]
