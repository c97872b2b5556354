"""Merging shard runs (``onnxviz mine --shard i/n`` on several machines) into one run: exact, since
every top-k list, spectrum reservoir and atlas sample merges without loss."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence, Union

from . import atlas_samples as SM
from . import spectrum as SP
from .run import MiningError, Run, Summary, mining_dir
from .store import FILENAME, Store

log = logging.getLogger("onnxviz")


def merge_runs(shard_dirs: Sequence[Union[str, Path]], out, thumbs: bool = True, command: str = "") -> Summary:
    """Merge complete shard runs (``mine(..., shard="i/n")``) into ``out``: the same result as one run."""
    stores = []
    try:
        for d in shard_dirs:
            p = mining_dir(d) / FILENAME
            if not p.exists():
                raise MiningError(f"no mining results in {d} (expected {p})")
            stores.append(Store(p, readonly=True))
        configs = [s.get("config") for s in stores]
        base = {k: v for k, v in configs[0].items() if k != "shard"}
        for d, c, s in zip(shard_dirs, configs, stores):
            if {k: v for k, v in c.items() if k != "shard"} != base:
                raise MiningError(f"{d} was mined with other settings than {shard_dirs[0]}; cannot merge")
            if not s.get("complete"):
                raise MiningError(f"{d} is not complete; finish it first (run its mine command again)")
        shards = sorted(tuple(c["shard"]) for c in configs)
        n = shards[0][1]
        if any(sn != n for _, sn in shards) or sorted(i for i, _ in shards) != list(range(n)):
            log.warning("merging shards %s: not the full set 0..%d/%d; the result covers only these", shards,
                        n - 1, n)
        layers = stores[0].layers()
        units = {r["name"]: r["units"] for r in layers}
        merged: dict = {}
        for s in stores:
            for key, t in s.load_state(units).items():
                if key in merged:
                    merged[key].merge(t)
                else:
                    merged[key] = t
        total = sum(int(s.get("done", 0)) for s in stores)
        reservoirs = [r for r in (SP.load(s.db) for s in stores) if r is not None]
        reservoir = reservoirs[0] if reservoirs else None
        for r in reservoirs[1:]:
            reservoir = SP.merge(reservoir, r)
        dest = Store(mining_dir(out) / FILENAME)
        run = Run(Path(out), dest, layers, merged, [], summary=Summary(out=str(mining_dir(out))))
        with run:
            if dest.get("config") is not None:
                raise MiningError(f"{mining_dir(out)} already holds results; choose an empty --out")
            with dest.db:
                dest.put("config", dict(base, shard=[0, 1], merged_from=[list(x) for x in shards]))
                dest.put("command", command)
                dest.set_layers(layers)
                for s in stores:
                    dest.add_images(s.db.execute("SELECT idx, key, width, height, error FROM images").fetchall())
                dest.put("done", total)
                if reservoir is not None:
                    SP.save(dest.db, reservoir)
                for s in stores:
                    SM.copy(s.db, dest.db)
            return run.finish(True, thumbs=thumbs)
    finally:
        for s in stores:
            s.close()
