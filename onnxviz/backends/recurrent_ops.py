"""ONNX LSTM, GRU and RNN as differentiable torch modules (onnx2torch 1.5.15 converts none of them).

A CRNN's recurrent head sits between the conv features and the per-column logits, so rendering a unit in
or after it needs a gradient through the recurrence. Each module computes the op as ONNX defines it, one
time step at a time (a Python loop: sequences in vision models are tens of steps), with the input
projection of all steps done in one matmul up front. Weights that are constants in the file are read once
into buffers; any input the graph computes is taken at run time instead.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

#: ONNX activation name (lower case) -> (function of (x, alpha, beta), default alpha, default beta)
_ACTIVATIONS = {
    "sigmoid": (lambda x, a, b: torch.sigmoid(x), None, None),
    "tanh": (lambda x, a, b: torch.tanh(x), None, None),
    "relu": (lambda x, a, b: torch.relu(x), None, None),
    "affine": (lambda x, a, b: a * x + b, 1.0, 0.0),
    "leakyrelu": (lambda x, a, b: nn.functional.leaky_relu(x, a), 0.01, None),
    "thresholdedrelu": (lambda x, a, b: torch.where(x > a, x, torch.zeros_like(x)), 1.0, None),
    "scaledtanh": (lambda x, a, b: a * torch.tanh(b * x), 1.0, 1.0),
    "hardsigmoid": (lambda x, a, b: torch.clamp(a * x + b, 0.0, 1.0), 0.2, 0.5),
    "elu": (lambda x, a, b: nn.functional.elu(x, a), 1.0, None),
    "softsign": (lambda x, a, b: nn.functional.softsign(x), None, None),
    "softplus": (lambda x, a, b: nn.functional.softplus(x), None, None),
}
#: gates per op, and the default activations of one direction
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}


def activation_functions(op: str, names, alphas, betas, directions: int) -> list:
    """One list of (name, alpha, beta) per direction. ``activation_alpha``/``beta`` are consumed in order by
    the activations that take a parameter (onnxruntime's reading); a missing one takes the function's default."""
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in (names or DEFAULT_ACTIVATIONS[op] * directions)]
    per = len(DEFAULT_ACTIVATIONS[op])
    if len(names) != per * directions:
        raise NotImplementedError(f"{op} with activations {names}: expected {per} per direction "
                                  f"({per * directions} in all)")
    alphas, betas = list(alphas or []), list(betas or [])
    out = []
    for name in names:
        if name.lower() not in _ACTIVATIONS:
            raise NotImplementedError(f"{op} activation {name!r} is not supported")
        _, a, b = _ACTIVATIONS[name.lower()]
        if a is not None and alphas:
            a = float(alphas.pop(0))
        if b is not None and betas:
            b = float(betas.pop(0))
        out.append((name.lower(), a, b))
    return [out[d * per:(d + 1) * per] for d in range(directions)]


class Recurrent(nn.Module):
    """ONNX LSTM / GRU / RNN. ``constants`` holds the inputs that are constants in the file, by ONNX input name
    (W, R, B, sequence_lens, initial_h, initial_c, P); forward takes X and then the inputs named in ``runtime``,
    the ones the graph computes (only these are in the node's mapping: onnx2torch reads an empty input name
    as the output of any node that leaves one of its outputs unnamed)."""

    def __init__(self, op: str, hidden_size: int, direction: str, activations: list, clip: Optional[float],
                 layout: int, outputs: int, constants: dict, runtime: tuple = (), input_forget: bool = False,
                 linear_before_reset: bool = False):
        super().__init__()
        if direction not in ("forward", "reverse", "bidirectional"):
            raise NotImplementedError(f"{op} direction {direction!r} is not supported")
        self.op, self.hidden, self.direction, self.clip, self.layout = op, hidden_size, direction, clip, layout
        self.outputs, self.input_forget, self.linear_before_reset = outputs, input_forget, linear_before_reset
        self.acts = activations
        self.const_names, self.runtime = sorted(constants), tuple(runtime)
        for name, value in constants.items():
            self.register_buffer(f"const_{name}", value)

    def forward(self, X, *computed):
        given = {name: getattr(self, f"const_{name}") for name in self.const_names}
        given.update(zip(self.runtime, computed))
        return self.run(X, **given)

    def run(self, X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None):
        if self.layout:  # (batch, seq, ...) -> (seq, batch, ...)
            X = X.transpose(0, 1)
            initial_h = None if initial_h is None else initial_h.transpose(0, 1)
            initial_c = None if initial_c is None else initial_c.transpose(0, 1)
        dtype, steps, batch = X.dtype, X.shape[0], X.shape[1]
        W, R = W.to(dtype), R.to(dtype)
        g = GATES[self.op] * self.hidden
        dirs = 2 if self.direction == "bidirectional" else 1
        mask = None
        if sequence_lens is not None:  # (seq, batch, 1): steps at or past a sequence's length leave it unchanged
            mask = (torch.arange(steps, device=X.device)[:, None] < sequence_lens.to(X.device)[None, :])[..., None]
        ys, hs, cs = [], [], []
        for d in range(dirs):
            reverse = self.direction == "reverse" or d == 1
            wb = B[d, :g].to(dtype) if B is not None else None
            rb = B[d, g:].to(dtype) if B is not None else None
            xw = X @ W[d].t()  # every step's input projection at once
            if wb is not None:
                xw = xw + wb
            zeros = X.new_zeros(batch, self.hidden)
            h = initial_h[d].to(dtype) if initial_h is not None else zeros
            c = initial_c[d].to(dtype) if initial_c is not None else zeros
            p = P[d].to(dtype) if P is not None else None
            y = [None] * steps
            for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
                if self.op == "LSTM":
                    h_new, c_new = self._lstm(xw[t], h, c, R[d], rb, p, self.acts[d])
                elif self.op == "GRU":
                    h_new, c_new = self._gru(xw[t], h, R[d], rb, self.acts[d]), c
                else:
                    h_new, c_new = self._rnn(xw[t], h, R[d], rb, self.acts[d]), c
                if mask is not None:
                    h_new, c_new = torch.where(mask[t], h_new, h), torch.where(mask[t], c_new, c)
                    y[t] = torch.where(mask[t], h_new, torch.zeros_like(h_new))
                else:
                    y[t] = h_new
                h, c = h_new, c_new
            ys.append(torch.stack(y))
            hs.append(h)
            cs.append(c)
        Y, Y_h, Y_c = torch.stack(ys, 1), torch.stack(hs), torch.stack(cs)  # (seq, dirs, batch, hidden), ...
        if self.layout:
            Y, Y_h, Y_c = Y.permute(2, 0, 1, 3), Y_h.transpose(0, 1), Y_c.transpose(0, 1)
        out = (Y, Y_h, Y_c)[:self.outputs]
        return out[0] if self.outputs == 1 else out

    def _clip(self, x):
        return x if self.clip is None else torch.clamp(x, -self.clip, self.clip)

    def _act(self, spec, x, clip: bool = True):
        name, a, b = spec
        return _ACTIVATIONS[name][0](self._clip(x) if clip else x, a, b)

    def _lstm(self, xw, h, c, r, rb, p, acts):
        """ONNX's gate order is i, o, f, c; peepholes i, o, f; f = 1 - i when input_forget."""
        f_act, g_act, h_act = acts
        gates = xw + h @ r.t()
        if rb is not None:
            gates = gates + rb
        gi, go, gf, gc = gates.chunk(4, dim=-1)
        pi, po, pf = p.chunk(3) if p is not None else (None, None, None)
        i = self._act(f_act, gi if pi is None else gi + pi * c)
        f = 1 - i if self.input_forget else self._act(f_act, gf if pf is None else gf + pf * c)
        c_new = f * c + i * self._act(g_act, gc)
        o = self._act(f_act, go if po is None else go + po * c_new)
        return o * self._act(h_act, c_new, clip=False), c_new  # onnxruntime clips gates, not the cell

    def _gru(self, xw, h, r, rb, acts):
        """ONNX's gate order is z, r, h; linear_before_reset applies the reset gate after R's product."""
        f_act, g_act = acts
        xz, xr, xh = xw.chunk(3, dim=-1)
        n = self.hidden
        hz, hr = (h @ r[:2 * n].t()).chunk(2, dim=-1)
        rh = r[2 * n:]
        bz, br, bh = rb.chunk(3) if rb is not None else (0, 0, 0)
        z = self._act(f_act, xz + hz + bz)
        reset = self._act(f_act, xr + hr + br)
        if self.linear_before_reset:
            cand = self._act(g_act, xh + reset * (h @ rh.t() + bh))
        else:
            cand = self._act(g_act, xh + (reset * h) @ rh.t() + bh)
        return (1 - z) * cand + z * h

    def _rnn(self, xw, h, r, rb, acts):
        pre = xw + h @ r.t()
        return self._act(acts[0], pre if rb is None else pre + rb)


#: ONNX input names of each op, in order
INPUTS = {"LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
          "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
          "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h")}
