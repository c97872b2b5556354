"""Dataset examples (Microscope-style) for any ONNX model and any image collection.

Mining::

    from onnxviz.mining import mine, merge_runs, open_results
    s = mine("models/mobilenet_v2.onnx", "photos/", out="runs/mnv2", top=16, bottom=16, batch_size=32)
    print(s.text())                          # images, skipped, time, throughput
    mine(..., shard="0/2"); mine(..., shard="1/2")   # in two places, then:
    merge_runs(["runs/a", "runs/b"], "runs/all")     # == one unsharded run

For every channel of the chosen layers (default all of ``model.layers``) it keeps the top-k and
bottom-k images by the channel's spatial mean ("mean") and by its spatial maximum ("max", a
spatial neuron), with the (y, x) of the maximum. Calling ``mine`` again with the same arguments
resumes an interrupted run; the result is identical to an uninterrupted one.

Reading (what the site uses)::

    r = open_results("runs/mnv2")            # reads runs/mnv2/mining/mining.sqlite
    r.layers, r.units("features.7")          # mined layer names (model order), unit count
    r.config, r.command, r.summary           # settings (model, source, k, preprocessing), the CLI line
    r.scores("features.7")                   # per unit: its top-1 activation (None where unknown)
    ex = r.examples("features.7", 12, stat="mean", direction="top", k=9)  # best first; stat "mean"
                                             # (default, what a channel render maximizes) or "max"
    e = ex[0]
    e.activation, e.index, e.key, e.label    # value; image index; path in the folder/archive; file name
    e.position                               # (y, x) of the maximum in the layer's map (None for (N, C))
    e.input_box, e.box                       # receptive field (l, t, r, b): model-input px; original px
    e.image, e.crop                          # Paths of PNGs: the image as the model saw it (224 px);
                                             # the receptive-field crop of the original photo (made on
                                             # first access, cached under <run>/mining/)
    r.contact_sheet("features.7", 12, "sheet.png")
    r.skipped()                              # [(index, key, reason)] of unreadable files

Ranking rules: larger first for "top", smaller first for "bottom"; equal values: lower image
index first; NaN never ranks above a real number (NaNs come last in both lists; stored as NULL).
Crops are the theoretical receptive field computed from the graph (conv/pool kernel, stride,
padding, dilation; see fields.py); "mean" examples carry the position of their maximum too.
Storage (SQLite, one file; why: see store.py): the ``examples`` table is queryable directly.
"""
from ..layers.receptive_fields import receptive_fields
from .datasets import DatasetError, open_source
from .merge import merge_runs
from .mine import mine
from .results import DEFAULT_STAT, Example, Results, open_results
from .run import MiningError, Summary
from .topk import TopK, brute_force

__all__ = ["mine", "merge_runs", "open_results", "Results", "Example", "Summary", "TopK", "brute_force",
           "open_source", "receptive_fields", "DatasetError", "MiningError", "DEFAULT_STAT"]
