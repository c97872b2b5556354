"""Learning a dictionary of concepts from a layer's activation vectors: NMF or a TopK sparse autoencoder.

- ``nmf``: scikit-learn's NMF (Building Blocks of Interpretability factored layers this way), by
  coordinate descent over all vectors (``solver="cd"``) or, much faster on 100k vectors and more,
  ``MiniBatchNMF`` (``solver="minibatch"``: multiplicative updates over batches of 2,048). NMF's
  codes come from an optimisation per vector, which a graph cannot run cheaply, so an amortized
  encoder (least squares from features to NMF codes, then ReLU) stands in for it; the metrics are
  measured through that encoder, so they describe what mining sees.
- ``sae``: a TopK sparse autoencoder (Gao et al. 2024, as overcomplete's ``TopKSAE``): linear encoder,
  ReLU, keep the ``top_k`` largest codes, unit-norm decoder atoms, trained with Adam on the
  reconstruction error. (overcomplete itself imports opencv, matplotlib, timm and torchvision at
  ``import overcomplete``; the 40 lines below follow its TopKSAE without those.)

Both are seeded: the same vectors, settings and seed give the same dictionary.
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from ..errors import NotEnoughVectors, OnnxVizError
from .dictionary import Dictionary

log = logging.getLogger("onnxviz")
METHODS = ("nmf", "sae")
NMF_SOLVERS = ("cd", "minibatch")
MIN_VECTORS_PER_CONCEPT = 20


def default_top_k(concepts: int) -> int:
    return max(2, concepts // 16)


def learn(vectors: np.ndarray, layer: str, method: str = "nmf", concepts: Optional[int] = None, seed: int = 0,
          top_k: Optional[int] = None, epochs: int = 20, max_iter: int = 300, progress: bool = True,
          stability: bool = True, solver: str = "cd") -> Dictionary:
    """A dictionary of ``concepts`` atoms (default 4x the channels) over ``vectors`` (M, C).

    ``stability``: learn a second dictionary with ``seed + 1`` and report how well the two match
    (mean cosine of matched atoms): the same concepts found twice are less likely an accident.
    ``solver``: NMF's, "cd" (every vector, ``max_iter`` iterations) or "minibatch" (``epochs`` passes)."""
    x = np.asarray(vectors, np.float32)
    if x.ndim != 2 or x.shape[0] == 0:  # a run mined without --atlas-layers: the CLI names the command
        raise NotEnoughVectors(layer, 0, MIN_VECTORS_PER_CONCEPT * int(concepts or 0), MIN_VECTORS_PER_CONCEPT)
    m, c = x.shape
    k = int(concepts or 4 * c)
    if method not in METHODS:
        raise OnnxVizError(f"unknown concept method {method!r}; use one of {', '.join(METHODS)}")
    if solver not in NMF_SOLVERS:
        raise OnnxVizError(f"unknown NMF solver {solver!r}; use one of {', '.join(NMF_SOLVERS)}")
    need = MIN_VECTORS_PER_CONCEPT * k
    if m < need:
        raise NotEnoughVectors(layer, m, need, MIN_VECTORS_PER_CONCEPT)
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1.0
    split = bool((x < 0).mean() > 0.01)
    settings = {"method": method, "concepts": k, "seed": seed, "vectors": m, "channels": c}
    fit = _nmf if method == "nmf" else _sae
    d = fit(x, layer, k, seed, rms, split, top_k, epochs, max_iter, progress, solver)
    d.settings.update(settings)
    d.metrics = quality(d, x)
    if stability:
        twin = fit(x, layer, k, seed + 1, rms, split, top_k, epochs, max_iter, progress, solver)
        d.metrics["stability"] = round(match_cosine(d.decoder, twin.decoder), 4)
    return d




def _features(x, rms, split):
    f = x / np.float32(rms)
    return np.concatenate([np.maximum(f, 0), np.maximum(-f, 0)], 1) if split else f


def _nmf(x, layer, k, seed, rms, split, top_k, epochs, max_iter, progress, solver="cd") -> Dictionary:
    from sklearn.decomposition import NMF, MiniBatchNMF

    f = _features(x, rms, split)
    if not split:
        f = np.maximum(f, 0)  # a few tiny negatives (float rounding of a ReLU layer)
    init = "nndsvda" if k <= min(f.shape) else "random"
    if solver == "minibatch":
        # no early stop: with sklearn's defaults it stops after one epoch (36 steps) on block_7, far from a fit
        nmf = MiniBatchNMF(n_components=k, init=init, random_state=seed, batch_size=2048, max_iter=epochs, tol=0,
                           max_no_improvement=None)
    else:
        nmf = NMF(n_components=k, init=init, random_state=seed, max_iter=max_iter, tol=1e-4)
    h = nmf.fit_transform(f)
    log.info("NMF (%s) of %s: %d iterations, reconstruction error %.4g", solver, layer, nmf.n_iter_,
             nmf.reconstruction_err_)
    # amortized encoder: codes ~ relu(f @ W + b), least squares with a small ridge
    a = np.concatenate([f, np.ones((len(f), 1), np.float32)], 1).astype(np.float64)
    gram = a.T @ a + 1e-3 * np.eye(a.shape[1])
    wb = np.linalg.solve(gram, a.T @ h)
    return Dictionary(layer=layer, method="nmf", decoder=nmf.components_.astype(np.float32),
                      weight=wb[:-1].astype(np.float32), bias=wb[-1].astype(np.float32), scale=rms,
                      split_sign=split, settings={"nmf_iterations": int(nmf.n_iter_), "init": init, "solver": solver})


def _sae(x, layer, k, seed, rms, split, top_k, epochs, max_iter, progress, solver=None) -> Dictionary:
    import torch

    from ..progress import bar

    top_k = int(top_k or default_top_k(k))
    f = torch.from_numpy(_features(x, rms, split))
    g = torch.Generator().manual_seed(seed)
    d = f.shape[1]
    dec = torch.randn(k, d, generator=g)
    dec = dec / dec.norm(dim=1, keepdim=True)
    enc = dec.T.clone().requires_grad_(True)  # tied initialisation (Gao et al.)
    dec.requires_grad_(True)
    b_enc = torch.zeros(k, requires_grad=True)
    b_dec = f.median(0).values.clone().requires_grad_(True)
    opt = torch.optim.Adam([enc, dec, b_enc, b_dec], lr=1e-3)
    batch = int(min(1024, max(64, len(f) // 20)))  # at least ~20 steps per epoch on small runs
    steps = epochs * max(1, len(f) // batch)
    with bar(total=steps, desc=f"SAE {layer}", unit="step", enabled=progress) as pb:
        for _ in range(epochs):
            order = torch.randperm(len(f), generator=g)
            for i in range(0, len(f) - batch + 1 if len(f) >= batch else 1, batch):
                xb = f[order[i:i + batch]]
                z = torch.relu((xb - b_dec) @ enc + b_enc)
                top = torch.topk(z, top_k, dim=1)
                z = torch.zeros_like(z).scatter(1, top.indices, top.values)
                loss = ((z @ dec + b_dec - xb) ** 2).sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    dec /= dec.norm(dim=1, keepdim=True).clamp_min(1e-8)
                pb.update(1)
    with torch.no_grad():
        w = enc.detach().numpy().astype(np.float32)
        b = (b_enc - b_dec @ enc).detach().numpy().astype(np.float32)  # (f - b_dec) W + b_enc = f W + b
        return Dictionary(layer=layer, method="sae", decoder=dec.detach().numpy().astype(np.float32), weight=w, bias=b,
                          offset=b_dec.detach().numpy().astype(np.float32), scale=rms, split_sign=split, top_k=top_k,
                          settings={"epochs": epochs, "top_k": top_k, "batch": batch, "lr": 1e-3})


def quality(d: Dictionary, x: np.ndarray) -> dict:
    """Explained variance of the reconstruction, mean L0 and dead concepts, through the stored encoder."""
    z = d.encode(x)
    rec = d.decode(z)
    resid = float(((x - rec) ** 2).sum())
    total = float(((x - x.mean(0)) ** 2).sum()) or 1.0
    active = (z > 0)
    return {"explained_variance": round(1.0 - resid / total, 4), "mean_l0": round(float(active.sum(1).mean()), 3),
            "dead": int((~active.any(0)).sum()), "vectors": int(len(x))}


def match_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |cosine| of the atoms of two dictionaries matched one to one (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    sim = np.abs(an @ bn.T)
    rows, cols = linear_sum_assignment(-sim)
    return float(sim[rows, cols].mean())
