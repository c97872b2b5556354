"""Activation vectors at random positions, sampled during mining: the raw material of an activation atlas.

For each mined image and each chosen layer, ``per_image`` positions of the layer's map are drawn
without replacement by a counter-based generator keyed by (seed, image index, position) (the same
positions whatever the batch size, interruption or shard), and the activation vector at each (C
channels) is kept as float16: 2 C bytes per vector, in the run's SQLite file (table
``atlas_samples``, one row per (layer, image, slot), so a redone batch overwrites instead of
duplicating). Lucid's atlas used one vector per image over a million images; with the photo
collections onnxviz meets (hundreds to thousands) several per image fill a grid.

``sample`` is a pure function over one batch's maps, so a Ray actor can run it too.
"""
from __future__ import annotations

import numpy as np

from .spectrum import priority

SCHEMA = ("CREATE TABLE IF NOT EXISTS atlas_samples (layer TEXT, image INTEGER, slot INTEGER, y INTEGER, x INTEGER, "
          "vec BLOB, PRIMARY KEY (layer, image, slot)) WITHOUT ROWID;")


def positions(seed: int, index: int, h: int, w: int, per_image: int, view: int = 0) -> np.ndarray:
    """``per_image`` distinct flat positions in an (h, w) map for image ``index`` (fewer if the map is smaller);
    ``view``: of that augmented view of the image (views.py; 0: the image itself)."""
    n = h * w
    key = seed ^ 0x5A17 if view == 0 else (seed ^ 0x5A17) + 0x9E3779B1 * view
    keys = priority(key, np.uint64(index) * np.uint64(n) + np.arange(n, dtype=np.uint64))
    return np.argsort(keys, kind="stable")[:min(per_image, n)]


def sample(maps: np.ndarray, indices, per_image: int, seed: int = 0, layout: str = "NCHW", view: int = 0) -> list:
    """One batch's maps (B, C, H, W) (or NHWC) -> rows (image, slot, y, x, float16 vector bytes); the maps of
    augmented view ``view`` (views.py) fill slots ``view * per_image`` on."""
    maps = np.asarray(maps)
    if layout == "NHWC":
        maps = maps.transpose(0, 3, 1, 2)
    _, _, h, w = maps.shape
    rows = []
    for b, idx in enumerate(np.asarray(indices, np.int64)):
        for slot, p in enumerate(positions(seed, int(idx), h, w, per_image, view)):
            y, x = divmod(int(p), w)
            rows.append((int(idx), view * per_image + slot, y, x, maps[b, :, y, x].astype("<f2").tobytes()))
    return rows


def save(db, layer: str, rows: list) -> None:
    """Insert one layer's rows into the run's SQLite connection (inside the checkpoint transaction)."""
    db.execute(SCHEMA)
    db.executemany("INSERT OR REPLACE INTO atlas_samples VALUES (?,?,?,?,?,?)", [(layer,) + r for r in rows])


def layers(db) -> list:
    try:
        return [r[0] for r in db.execute("SELECT DISTINCT layer FROM atlas_samples")]
    except Exception:  # noqa: BLE001 - a run without samples
        return []


def load(db, layer: str) -> dict:
    """{"vectors": (M, C) float32, "image": (M,), "y": (M,), "x": (M,)} of one layer (M = 0 if none)."""
    try:
        rows = db.execute("SELECT image, y, x, vec FROM atlas_samples WHERE layer=? ORDER BY image, slot",
                          (layer,)).fetchall()
    except Exception:  # noqa: BLE001
        rows = []
    if not rows:
        return {"vectors": np.zeros((0, 0), np.float32), "image": np.zeros(0, np.int64), "y": np.zeros(0, np.int64),
                "x": np.zeros(0, np.int64)}
    vecs = np.stack([np.frombuffer(r[3], "<f2") for r in rows]).astype(np.float32)
    return {"vectors": vecs, "image": np.array([r[0] for r in rows], np.int64),
            "y": np.array([r[1] for r in rows], np.int64), "x": np.array([r[2] for r in rows], np.int64)}


def copy(src_db, dest_db) -> None:
    """Every sample of one run into another (a shard into the merged run), row for row."""
    for name in layers(src_db):
        dest_db.execute(SCHEMA)
        dest_db.executemany("INSERT OR REPLACE INTO atlas_samples VALUES (?,?,?,?,?,?)",
                            src_db.execute("SELECT * FROM atlas_samples WHERE layer=?", (name,)))
