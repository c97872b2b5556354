# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tour of onnxviz
#
# The real pretrained MobileNetV2 (torchvision's weights, shipped in a pip package), real photos
# (foolbox's labelled ImageNet validation photos and onnxviz's own cat), and every step a user of
# Lucid or OpenAI Microscope takes: **load** an ONNX file, **inspect** its layers, **render** a
# channel and a class, **mine** a folder of photos for each unit's dataset examples, **look** at
# them, and **attribute** a prediction to pixels and channels. Every result shows itself: a cell
# that ends with a result draws its picture or its table.
#
# Sizes and steps are small so the whole tour runs in a minute or two on 2 CPU cores (CI runs it:
# `tests/test_notebook.py`); the CLI's defaults (256 steps, the model's 224 px) make the pictures
# in the README. This file is kept paired with `tour.py` by jupytext (`jupytext --sync
# notebooks/tour.ipynb` after editing either).

# %%
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import onnxviz
from onnxviz import attribution as A
from onnxviz.mining import mine, open_results
from onnxviz.optvis import objectives as obj
from onnxviz.optvis import recipes, render
from onnxviz.preprocessing.images import imagenet_photos, sample_image_path

ROOT = Path(".") if Path("pyproject.toml").exists() else Path("..")  # run from the repository or notebooks/
MODEL = ROOT / "models" / "mobilenet_v2.onnx"
RUN = ROOT / "runs" / "tour"

# %% [markdown]
# ## Load
#
# `scripts/export.py` turns a zoo recipe into an ONNX file with its preprocessing (input size,
# mean/std, channel order, labels, readable layer aliases) stored inside; `scripts/demo.sh` does
# the same. Any other ONNX file loads too: its preprocessing is then inferred, with the evidence
# shown by `onnxviz inspect`.

# %%
if not MODEL.exists():
    subprocess.run([sys.executable, str(ROOT / "scripts" / "export.py"), "mobilenet_v2",
                    "--out", str(MODEL.parent)], check=True)
m = onnxviz.load(MODEL)
m.meta.input_size, m.meta.mean, m.meta.std, m.meta.channel_order, len(m.meta.labels)

# %% [markdown]
# ## Inspect
#
# The layers a person can name (`features.7`, alias `block_7`), their ops, shapes and unit counts:
# the same table as `onnxviz inspect models/mobilenet_v2.onnx`.

# %%
m

# %%
m.layer("block_7")

# %% [markdown]
# ## Render a channel, several channels, a class
#
# Gradient ascent on an FFT-parameterized, color-decorrelated image through the model converted to
# torch (and checked against onnxruntime). A list of units renders in one batch: image *i*
# maximizes unit *i*. Each picture is captioned with the unit's activation at the start and the end.

# %%
render(m, "block_7:12", steps=48, size=96, seed=0)

# %%
render(m, obj.channel("block_7", [0, 1, 2, 3]), steps=48, size=96, seed=0)

# %%
cat_class = m.meta.labels.index(next(lab for lab in m.meta.labels if "Egyptian cat" in lab))
render(m, obj.class_logit("logits", cat_class), steps=48, size=128, seed=0)

# %% [markdown]
# DeepDream starts from a photo and amplifies whatever a layer sees in it.

# %%
cat = sample_image_path()
recipes.deepdream(m, "block_7", cat, steps=16)

# %% [markdown]
# ## Mine a folder of photos
#
# One onnxruntime pass per image keeps, for every unit of the chosen layers, the images (and the
# positions in them) that excite it most and least. Here: 8 of foolbox's ImageNet photos and the
# cat; `onnxviz mine models/mobilenet_v2.onnx PHOTOS --run runs/mnv2` does the same for a folder of
# any size, every layer, resumable.

# %%
photos = RUN / "photos"
photos.mkdir(parents=True, exist_ok=True)
for path, _ in imagenet_photos()[:8]:
    shutil.copy(path, photos / path.name)
shutil.copy(cat, photos / "cat.jpg")
summary = mine(m, photos, RUN, layers=["block_7", "block_14"], top=4, bottom=2, batch_size=8,
               overwrite=True, progress=False)
results = open_results(RUN)
results

# %% [markdown]
# ## Look at a unit's examples
#
# Ranked by the channel's mean over positions (the statistic a channel render maximizes); each
# picture is the receptive field of the spatial maximum, cut from the original photo.

# %%
results.examples("block_7", 12, k=4)

# %%
results.examples("block_7", 12, direction="bottom", k=2)

# %%
results.examples("block_14", 5, stat="max", k=4)

# %% [markdown]
# ## Attribute a prediction
#
# Integrated gradients of the cat logit over the photo (red: evidence for, blue: against); the
# record says how close the attributions come to summing to logit(photo) - logit(baseline).
# Then the same target at a layer: where in the photo `block_7`'s evidence lies, and which of its
# channels carry it.

# %%
out = m.layer("logits").name
logits = m.activations(m.prepare(m.load_images([cat])), [out])[out][0]
print("predicted:", m.meta.labels[int(np.argmax(logits))])
ig = A.integrated_gradients(m, [cat], f"logits:{cat_class}", steps=16, tolerance=None)
rec = ig.record["images"][0]
print(f"attributions sum to {rec['attribution_sum']:.3f}, logit(photo) - logit(baseline) = "
      f"{rec['target_difference']:.3f}: {rec['completeness_error']:.1%} apart at {rec['steps']} steps")
ig

# %%
la = A.layer_attribution(m, [cat], f"logits:{cat_class}", "block_7")
la

# %%
top = [u for u, _ in la.top_channels(0, 4)]
render(m, obj.channel("block_7", top), steps=48, size=96, seed=0)

# %% [markdown]
# ## Next
#
# - `onnxviz site models/mobilenet_v2.onnx --run runs/mnv2 --out site/`: the whole model as a
#   Microscope-like static site (`bash scripts/demo.sh` builds one).
# - `A.activation_grid`, `A.build_atlas` (after `mine --atlas-layers`): the Building Blocks views,
#   which show themselves the same way.
# - The README's CLI and API sections, and `docs/` for the measurements.
