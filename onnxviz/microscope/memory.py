"""How many images fit in one render batch: free memory on the device over the measured bytes per image.

Timing alone picks the fastest batch among a few candidates; on a big layer or a busy device the
fastest candidate may not fit. So the calibration measures what one more image in a batch costs for
the deepest chosen layer (its truncated view holds every earlier layer, so it needs the most), reads
the device's free memory, and caps the batch with :func:`batch_for_memory`:

- CUDA: free memory from ``torch.cuda.mem_get_info(device)``; per image the difference of
  ``torch.cuda.max_memory_allocated(device)`` over one render step at two batch sizes.
- CPU: available RAM (``mining.batching.available_memory``: MemAvailable, or the cgroup limit left);
  per image the difference of the bytes autograd keeps for the backward pass (``saved_tensors_hooks``) at two batch sizes, times
  ``BACKWARD_FACTOR`` for the gradients that exist alongside them during the backward pass.

Only a ``FRACTION`` of the free memory is planned for (the other stages, the allocator's slack and
other processes need the rest). Every function takes the device it is about; none assumes cuda:0.
"""
from __future__ import annotations

from typing import Optional, Sequence

FRACTION = 0.7  # of the free memory a render batch may plan to use
BACKWARD_FACTOR = 2.0  # CPU: saved activations x this ~ peak of a step (gradients of the same size live beside them)
MAX_BATCH = 1024  # a bound for the bound: no plan renders more at once


def batch_for_memory(free_bytes: float, per_image_bytes: float, fixed_bytes: float = 0.0,
                     fraction: float = FRACTION, cap: int = MAX_BATCH) -> int:
    """The most images per batch that fit: (``fraction`` x free - fixed) / per image, at least 1, at most ``cap``.

    ``per_image_bytes`` <= 0 (nothing measured) gives ``cap``; a batch of 1 is returned even when
    not even one image fits (nothing smaller exists; the run then fails loudly, not the plan)."""
    if per_image_bytes <= 0:
        return int(cap)
    room = fraction * float(free_bytes) - float(fixed_bytes)
    return int(max(1, min(cap, room // float(per_image_bytes))))


def free_bytes(device) -> tuple:
    """(free bytes on ``device``, where the number comes from)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free), f"torch.cuda.mem_get_info({dev})"
    from ..mining.batching import available_memory  # the host's one answer: MemAvailable or the cgroup limit left

    return available_memory(), "available RAM (MemAvailable, or the cgroup limit left if smaller)"


def step_bytes(model, layer: str, units: Sequence[int], batch: int, device, **render_kw) -> int:
    """Bytes one render step of ``batch`` units of ``layer`` needs beyond what was allocated before it.

    CUDA: the peak allocated during the step (``max_memory_allocated`` after a reset) minus what was
    allocated before; other devices: the bytes autograd saves for the backward pass (each storage
    counted once) x ``BACKWARD_FACTOR``."""
    import torch

    from ..optvis import recipes

    dev = torch.device(device)
    chunk = (list(units) * batch)[:batch]
    kw = dict(batch_size=batch, device=dev, progress=False, seed=0, steps=1, **render_kw)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        before = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        for _ in recipes.render_layer(model, layer, chunk, **kw):
            pass
        torch.cuda.synchronize(dev)
        return int(torch.cuda.max_memory_allocated(dev) - before)
    seen: dict = {}

    def pack(t):
        try:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # a tensor without storage (e.g. a view of a sparse one)
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        for _ in recipes.render_layer(model, layer, chunk, **kw):
            pass
    return int(BACKWARD_FACTOR * sum(seen.values()))


def per_image_bytes(model, layer: str, units: Sequence[int], device, sizes: tuple = (1, 3), **render_kw) -> tuple:
    """(bytes per extra image, fixed bytes) of a render step of ``layer``: ``step_bytes`` at two batch sizes."""
    a, b = sizes
    small = step_bytes(model, layer, units, a, device, **render_kw)
    big = step_bytes(model, layer, units, b, device, **render_kw)
    per = max(0, big - small) / (b - a)
    if per == 0:  # nothing grew (an odd device): charge the whole step to one image
        per = big / b
    return int(per), int(max(0, small - a * per))


def memory_bound(model, layer: str, units: Sequence[int], device, **render_kw) -> dict:
    """What the plan records about memory: free bytes and where they come from, bytes per image of
    ``layer`` (the deepest chosen), fixed bytes, and ``max_batch`` (:func:`batch_for_memory`)."""
    free, source = free_bytes(device)
    per, fixed = per_image_bytes(model, layer, units, device, **render_kw)
    bound = batch_for_memory(free, per, fixed) if free > 0 else MAX_BATCH
    return {"free_bytes": free, "free_source": source, "layer": layer, "per_image_bytes": per,
            "fixed_bytes": fixed, "fraction": FRACTION, "max_batch": bound}


def describe(mem: dict) -> str:
    """One phrase for the plan: what bounds the batch."""
    gib = 1024 ** 3
    return (f"memory allows {mem['max_batch']} per batch ({mem['fraction']:.0%} of {mem['free_bytes'] / gib:.1f} GiB "
            f"free from {mem['free_source']}, {mem['per_image_bytes'] / 2 ** 20:.0f} MiB per image of "
            f"{mem['layer']})")


def capped(candidates: Sequence[int], bound: int) -> list:
    """The candidate batch sizes that fit under ``bound``, and ``bound`` itself when a candidate did not fit."""
    return sorted({min(int(b), int(bound)) for b in candidates})


def choose(cost: dict, bound: int, given: Optional[int] = None, min_gain: float = 1.1) -> tuple:
    """(batch, why) from seconds per unit-step by batch (``cost``) under the memory ``bound``.

    ``given`` (--batch-size) wins unless it does not fit (then ``bound``); otherwise the cheapest
    candidate, unless it gains less than ``min_gain`` over the smallest (then the smallest, which needs
    no batch to match a lone render)."""
    if given:
        if given > bound:
            return int(bound), f"given {given} (--batch-size), lowered to what fits"
        return int(given), "given (--batch-size)"
    fits = {b: c for b, c in cost.items() if b <= bound}
    smallest = min(fits)
    best = min(fits, key=lambda b: fits[b])
    chosen = best if fits[smallest] >= min_gain * fits[best] else smallest
    timing = ", ".join(f"batch {b} {1e3 * fits[b]:.1f} ms/unit-step" for b in sorted(fits))
    why = "fastest" if chosen == best else f"the bigger batches gain < {min_gain}x"
    return int(chosen), f"calibrated ({why}): {timing}"
