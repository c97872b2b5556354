"""The mining store: one SQLite file, ``<run>/mining/mining.sqlite``.

Why SQLite: one file that is easy to copy and publish; every checkpoint is a transaction, so a
run killed at any moment (Ctrl-C, kill -9, power loss) leaves the last complete checkpoint and
never a half-written one, which is what makes resuming exact; it is in the Python standard
library (no new dependency); and the site (or anyone, with the ``sqlite3`` shell) can query one
unit's examples with an index lookup instead of loading everything. Memory during a run is the
top-k state only (units x k per list); the store grows with the number of images only through
the ``images`` table (one row per image: its key, size and, for skipped files, why).

Tables
------
``meta(key, value)``          JSON values: config (model, source, layers, k, shard), progress
                              (``done``: how many of this shard's items are processed),
                              ``complete``, ``summary``, ``command``; Ray runs also
                              ``blocks_done`` (ids of the blocks folded into the state).
``layers(name, position, units, height, width, layout, field)``
``images(idx, key, width, height, error)``  idx = index in the source; error NULL when read fine.
``state(layer, stat, dir, keys, positions)`` the streaming top-k state as raw arrays (exact, for
                              resume and merge); stat 'mean'|'max', dir 'top'|'bottom'.
``examples(layer, unit, stat, dir, rank, image, value, y, x)`` the final, queryable result
                              (written when the run completes); value NULL means NaN.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .topk import TopK

FILENAME = "mining.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS layers (name TEXT PRIMARY KEY, position INTEGER, units INTEGER, height INTEGER,
                                   width INTEGER, layout TEXT, field TEXT);
CREATE TABLE IF NOT EXISTS images (idx INTEGER PRIMARY KEY, key TEXT, width INTEGER, height INTEGER, error TEXT);
CREATE TABLE IF NOT EXISTS state (layer TEXT, stat TEXT, dir TEXT, k INTEGER, keys BLOB, positions BLOB,
                                  PRIMARY KEY (layer, stat, dir));
CREATE TABLE IF NOT EXISTS examples (layer TEXT, unit INTEGER, stat TEXT, dir TEXT, rank INTEGER, image INTEGER,
                                     value REAL, y INTEGER, x INTEGER,
                                     PRIMARY KEY (layer, unit, stat, dir, rank)) WITHOUT ROWID;
"""


class Store:
    """Thin, typed access to the SQLite file."""

    def __init__(self, path, readonly: bool = False):
        self.path = Path(path)
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
                self.db.execute("SELECT count(*) FROM meta").fetchone()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(str(self.path), check_same_thread=False)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            from ..errors import RunDirError

            raise RunDirError(f"{self.path} is not a readable mining database ({exc}): the run is damaged or partial; "
                              "mine again with --overwrite (or into a new --out folder)") from None

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ meta
    def get(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        try:
            return json.loads(row[0]) if row else default
        except (TypeError, ValueError):
            raise self.damaged(f"{key!r} entry", "not JSON") from None

    def damaged(self, what: str, why: str = ""):
        """The error for a part of this file that cannot be read back (a flipped bit, a torn copy)."""
        from ..errors import RunDirError

        why = f" ({why})" if why else ""
        return RunDirError(f"{self.path}: its {what} is damaged{why}: the run is damaged or partial; "
                           "mine again with --overwrite (or into a new --out folder)")

    def put(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def set_layers(self, layers: Iterable[dict]) -> None:
        self.db.execute("DELETE FROM layers")
        self.db.executemany("INSERT INTO layers VALUES (?,?,?,?,?,?,?)",
                            [(d["name"], i, d["units"], d.get("height"), d.get("width"), d.get("layout"),
                              json.dumps(d.get("field"))) for i, d in enumerate(layers)])

    def layers(self) -> list:
        rows = self.db.execute("SELECT name, units, height, width, layout, field FROM layers ORDER BY position")
        return [{"name": r[0], "units": r[1], "height": r[2], "width": r[3], "layout": r[4],
                 "field": json.loads(r[5]) if r[5] else None} for r in rows]

    # ------------------------------------------------------------------ state
    def save_state(self, states: dict) -> None:
        """states: {(layer, stat, dir): TopK}; call inside a transaction."""
        self.db.executemany(
            "INSERT OR REPLACE INTO state VALUES (?,?,?,?,?,?)",
            [(layer, stat, d, t.k, t.keys.astype("<u8").tobytes(), t.positions.astype("<i8").tobytes())
             for (layer, stat, d), t in states.items()])

    def load_state(self, units: dict) -> dict:
        """{(layer, stat, dir): TopK} from the file; units: {layer: unit count}."""
        out = {}
        for layer, stat, d, k, keys, pos in self.db.execute("SELECT layer, stat, dir, k, keys, positions FROM state"):
            try:
                n = units[layer]
                out[(layer, stat, d)] = TopK(n, k, d == "top",
                                             np.frombuffer(keys, "<u8").astype(np.uint64).reshape(n, k).copy(),
                                             np.frombuffer(pos, "<i8").astype(np.int64).reshape(n, k).copy())
            except (KeyError, TypeError, ValueError):
                raise self.damaged(f"top-k state of layer {layer!r} ({stat}, {d})") from None
        return out

    def add_images(self, rows: list) -> None:
        """rows: (idx, key, width, height, error or None)."""
        self.db.executemany("INSERT OR REPLACE INTO images VALUES (?,?,?,?,?)", rows)

    def checkpoint(self, states: dict, image_rows: list, done: int, extra=None, **meta) -> None:
        """Everything processed so far, atomically; ``extra(db)`` writes more in the same transaction
        (the spectrum reservoir and atlas samples); ``meta``: more progress keys, e.g. blocks_done."""
        with self.db:
            self.add_images(image_rows)
            self.save_state(states)
            if extra is not None:
                extra(self.db)
            self.put("done", done)
            for key, value in meta.items():
                self.put(key, value)

    def write_examples(self, states: dict, widths: dict) -> None:
        """The final table, from the states; widths: {layer: spatial width (or None)}."""
        with self.db:
            self.db.execute("DELETE FROM examples")
            for (layer, stat, d), t in states.items():
                values, idx, pos = t.result()
                w = widths.get(layer)
                units, ranks = np.nonzero(idx >= 0)  # vectorised: rows are built in numpy, not one by one
                p = pos[units, ranks]
                has = ((p >= 0) & bool(w)).tolist()
                y = [int(v) if h else None for h, v in zip(has, (p // (w or 1)).tolist())]
                x = [int(v) if h else None for h, v in zip(has, (p % (w or 1)).tolist())]
                vals = [None if f != f else f for f in values[units, ranks].astype(np.float64).tolist()]
                n = len(vals)
                self.db.executemany("INSERT INTO examples VALUES (?,?,?,?,?,?,?,?,?)",
                                    zip([layer] * n, units.tolist(), [stat] * n, [d] * n, ranks.tolist(),
                                        idx[units, ranks].tolist(), vals, y, x))

    # ------------------------------------------------------------------ reading
    def image(self, idx: int) -> Optional[tuple]:
        return self.db.execute("SELECT key, width, height, error FROM images WHERE idx=?", (idx,)).fetchone()

    def skipped(self) -> list:
        return self.db.execute("SELECT idx, key, error FROM images WHERE error IS NOT NULL ORDER BY idx").fetchall()

    def counts(self) -> tuple:
        ok, bad = self.db.execute("SELECT SUM(error IS NULL), SUM(error IS NOT NULL) FROM images").fetchone()
        return int(ok or 0), int(bad or 0)

    def examples(self, layer: str, unit: int, stat: str, direction: str, k: Optional[int] = None) -> list:
        q = ("SELECT e.rank, e.image, e.value, e.y, e.x, i.key, i.width, i.height FROM examples e "
             "JOIN images i ON i.idx = e.image WHERE e.layer=? AND e.unit=? AND e.stat=? AND e.dir=? ORDER BY e.rank")
        rows = self.db.execute(q + (" LIMIT ?" if k is not None else ""),
                               (layer, unit, stat, direction) + ((k,) if k is not None else ())).fetchall()
        return rows

    def scores(self, layer: str, stat: str) -> dict:
        rows = self.db.execute("SELECT unit, value FROM examples WHERE layer=? AND stat=? AND dir='top' AND rank=0",
                               (layer, stat)).fetchall()
        return {u: v for u, v in rows}
