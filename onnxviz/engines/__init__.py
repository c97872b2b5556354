"""Where mining and rendering run: ``local`` (this process, threads) or ``ray`` (Ray workers).

    from onnxviz.engines import mine
    mine("model.onnx", "photos/", "runs/x", engine="ray", workers=2)              # local Ray
    mine("model.onnx", "/shared/imagenet/val", "runs/x", engine="ray", address="auto",
         workers=8, gpus_per_worker=1)                                           # a cluster

Both engines write the same store (onnxviz/mining/store.py) with the same result; only the
engine's own settings (block size) are recorded for resume checks. See ray.py for the pipeline.
"""
from __future__ import annotations

ENGINES = ("local", "ray")


def mine(model, source, out, engine: str = "local", **kwargs):
    """Mine with the chosen engine; kwargs as ``onnxviz.mining.mine`` (+ ray.mine's for "ray")."""
    if engine == "local":
        from ..mining import mine as local_mine

        for key in ("address", "num_cpus", "gpus_per_worker", "block_size"):
            kwargs.pop(key, None)
        return local_mine(model, source, out, **kwargs)
    if engine == "ray":
        from . import ray

        return ray.mine(model, source, out, **kwargs)
    raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")


__all__ = ["ENGINES", "mine"]
