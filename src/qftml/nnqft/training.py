r"""Training ensembles of networks: when gradient descent keeps or breaks a symmetry.

Many independent networks are trained at once: their parameters carry a leading ensemble
axis and the loss is the sum of the per-network losses, so one backward pass trains all of
them exactly as if trained one by one (same data order for all).

**Symmetry preservation** {cite}`Maiti:2021fpy`. If the initial density $P_\theta(0)$ and
the loss are both invariant under $\theta\mapsto R\theta$ (here: $R\in SO(D)$ acting on the
last layer), gradient flow commutes with $R$, so $P_\theta(t)$ stays invariant. The loss
$\mathcal L = \sum_x (f_i(x)f_i(x) - y_jy_j)^2$ depends on $|f|$ only and preserves the
$SO(D)$ symmetry; the mean-squared error $\sum_x|f(x)-y|^2$ to a fixed target vector does
not: it turns on a nonzero mean $\langle f\rangle\propto y$, which breaks it.

**Symmetry breaking at initialization.** The rows $i\le k$ of the last layer are drawn with a
nonzero mean, $W_{ij}\sim\mathcal N(\mu_W m_{ij}, \sigma_w^2/N)$, which breaks the $SO(D)$
symmetry of the output density at initialization. The pattern $m$ is either ``uniform``
($m_{ij}=1$: the literal setting of the source talk, unrelated to the data), ``aligned``
(row $i$ along the centred class-$i$ mean of the network's own initial hidden features,
i.e. proportional to the ground truth), ``random`` (rows along random directions of the
same norm: same amount of breaking, no relation to the ground truth) or ``misaligned``
(the aligned rows assigned to the wrong classes by a cyclic shift).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..progress import progress
from .ensemble import _seed_for

PATTERNS = ("uniform", "aligned", "random", "misaligned")


def _act(name):
    acts = {"erf": torch.erf, "relu": torch.relu, "tanh": torch.tanh}
    if name not in acts:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(acts)}")
    return acts[name]


def _init(gen, m, d_in, width, d_out, sigma_w, sigma_b):
    w0 = torch.randn(m, width, d_in, generator=gen, dtype=torch.float64) * sigma_w / d_in**0.5
    b0 = torch.randn(m, width, generator=gen, dtype=torch.float64) * sigma_b
    w1 = torch.randn(m, d_out, width, generator=gen, dtype=torch.float64) * sigma_w / width**0.5
    b1 = torch.randn(m, d_out, generator=gen, dtype=torch.float64) * sigma_b
    return [w0, b0, w1, b1]


def _forward(params, x, act):
    """Batched one-hidden-layer networks: x (P, d) or (M, P, d) -> (M, P, D)."""
    w0, b0, w1, b1 = params
    h = act(torch.matmul(x, w0.transpose(1, 2)) + b0[:, None, :])
    return torch.matmul(h, w1.transpose(1, 2)) + b1[:, None, :]


@dataclass(frozen=True)
class TrainedEnsemble:
    """Outputs at ``x_eval`` of every network before and after training, and the loss curve."""

    before: np.ndarray
    after: np.ndarray
    loss: np.ndarray


def train_output_ensemble(
    x_train,
    y_train,
    x_eval,
    *,
    n_nets: int,
    width: int,
    loss: str = "invariant",
    arch: str = "erf",
    steps: int = 200,
    lr: float = 0.05,
    sigma_w: float = 1.0,
    sigma_b: float = 1.0,
    clip: float = 1.0,
    seed: int = 0,
) -> TrainedEnsemble:
    r"""Train ``n_nets`` networks $\mathbb R^{d}\to\mathbb R^{D}$ by full-batch gradient descent.

    ``loss="invariant"``: $\frac1P\sum_x (|f(x)|^2 - |y(x)|^2)^2$ (SO(D) invariant);
    ``loss="mse"``: $\frac1P\sum_x |f(x) - y(x)|^2$ (not invariant). ``y_train`` is
    (P, D). Returns outputs (n_nets, n_eval, D) before and after, and the mean loss curve.
    Each network's gradient is clipped to norm ``clip`` (the quartic loss otherwise
    diverges for the networks in the tails of the ensemble); the norm of the whole
    per-network gradient is SO(D) invariant, so clipping keeps gradient descent equivariant.
    """
    if loss not in ("invariant", "mse"):
        raise ValueError(f"loss must be 'invariant' or 'mse'; got {loss!r}")
    x = torch.as_tensor(np.asarray(x_train, dtype=np.float64))
    y = torch.as_tensor(np.asarray(y_train, dtype=np.float64))
    xe = torch.as_tensor(np.asarray(x_eval, dtype=np.float64))
    if x.ndim != 2 or y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"need x_train (P, d) and y_train (P, D); got {x.shape}, {y.shape}")
    act = _act(arch)
    gen = torch.Generator().manual_seed(_seed_for(seed, 2))
    params = _init(gen, n_nets, x.shape[1], width, y.shape[1], sigma_w, sigma_b)
    for p in params:
        p.requires_grad_(True)
    with torch.no_grad():
        before = _forward(params, xe, act).numpy().copy()
    opt = torch.optim.SGD(params, lr=lr)
    curve = []
    for _ in progress(range(steps), desc=f"training ({loss})"):
        opt.zero_grad()
        f = _forward(params, x, act)
        if loss == "invariant":
            per_net = (((f**2).sum(-1) - (y**2).sum(-1)) ** 2).mean(-1)
        else:
            per_net = ((f - y) ** 2).sum(-1).mean(-1)
        per_net.sum().backward()
        with torch.no_grad():
            norm2 = sum((p.grad**2).reshape(n_nets, -1).sum(1) for p in params)
            scale = torch.clamp(clip / torch.sqrt(norm2 + 1e-30), max=1.0)
            for p in params:
                p.grad *= scale.reshape(-1, *([1] * (p.ndim - 1)))
        opt.step()
        curve.append(per_net.mean().item())
    with torch.no_grad():
        after = _forward(params, xe, act).numpy().copy()
    return TrainedEnsemble(before, after, np.asarray(curve))


# ----------------------------------------------------------------------------------------------
# Symmetry breaking at initialization
# ----------------------------------------------------------------------------------------------


def mean_pattern(
    pattern: str, hidden: torch.Tensor, labels: torch.Tensor, n_classes: int, gen=None
):
    r"""Row directions $m$ (M, C, N) for the last-layer means, normalized to $|m_i|^2 = N$.

    ``hidden`` are the initial hidden features (M, P, N) on the training inputs; ``gen``
    (a torch generator) draws the ``random`` directions.
    """
    m, _, width = hidden.shape
    if pattern == "uniform":
        return torch.ones(m, n_classes, width, dtype=hidden.dtype)
    if pattern == "random":
        rows = torch.randn(m, n_classes, width, generator=gen, dtype=hidden.dtype)
        return rows / rows.norm(dim=-1, keepdim=True) * math.sqrt(width)
    if pattern not in PATTERNS:
        raise ValueError(f"unknown mean pattern {pattern!r}; choose one of {PATTERNS}")
    onehot = torch.nn.functional.one_hot(labels, n_classes).to(hidden.dtype)  # (P, C)
    counts = onehot.sum(0).clamp(min=1)
    class_means = torch.einsum("pc,mpn->mcn", onehot, hidden) / counts[None, :, None]
    centred = class_means - hidden.mean(1, keepdim=True)
    norm = centred.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    rows = centred / norm * math.sqrt(width)
    if pattern == "misaligned":
        rows = torch.roll(rows, shifts=1, dims=1)
    return rows


def _accuracy(params, x, y, act, n_seeds):
    """Test accuracy of every network, shaped (cells, seeds)."""
    with torch.no_grad():
        pred = _forward(params, x, act).argmax(-1)
        return (pred == y).double().mean(-1).reshape(-1, n_seeds).numpy()


@dataclass(frozen=True)
class BreakingScan:
    """Test accuracy of every (pattern, k, mu, seed) network; ``curves`` per epoch."""

    patterns: tuple[str, ...]
    ks: np.ndarray
    mus: np.ndarray
    accuracy: np.ndarray  # (n_patterns, n_k, n_mu, n_seeds), after the last epoch
    curves: np.ndarray  # (n_epochs + 1, n_patterns, n_k, n_mu, n_seeds)

    def mean(self, pattern: str) -> tuple[np.ndarray, np.ndarray]:
        """Seed mean and standard error of the final accuracy, (n_k, n_mu) each."""
        a = self.accuracy[self.patterns.index(pattern)]
        return a.mean(-1), a.std(-1, ddof=1) / np.sqrt(a.shape[-1])


def symmetry_breaking_scan(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    ks,
    mus,
    patterns=("uniform", "aligned"),
    n_seeds: int = 3,
    width: int = 64,
    arch: str = "relu",
    epochs: int = 3,
    lr: float = 0.05,
    batch_size: int = 64,
    sigma_w: float = 1.0,
    sigma_b: float = 1.0,
    seed: int = 0,
    max_batch_nets: int = 512,
) -> BreakingScan:
    r"""Train networks whose first ``k`` last-layer rows have mean $\mu_W m_{ij}$; measure accuracy.

    Every (pattern, k, mu) cell is trained from ``n_seeds`` initializations; network ``s``
    of every cell shares its random draws (common random numbers), so differences between
    cells are not masked by seed-to-seed noise. Plain minibatch SGD on the cross-entropy,
    the same minibatch order for every network.
    """
    x_tr = torch.as_tensor(np.asarray(x_train, dtype=np.float64))
    y_tr = torch.as_tensor(np.asarray(y_train, dtype=np.int64))
    x_te = torch.as_tensor(np.asarray(x_test, dtype=np.float64))
    y_te = torch.as_tensor(np.asarray(y_test, dtype=np.int64))
    ks = np.asarray(ks, dtype=int)
    mus = np.asarray(mus, dtype=float)
    patterns = tuple(patterns)
    n_classes = int(max(y_tr.max(), y_te.max()) + 1)
    if ks.min() < 0 or ks.max() > n_classes:
        raise ValueError(f"k must be in [0, {n_classes}]; got {ks.tolist()}")
    for p in patterns:
        if p not in PATTERNS:
            raise ValueError(f"unknown mean pattern {p!r}; choose one of {PATTERNS}")
    act = _act(arch)
    cells = [(p, k, mu) for p in patterns for k in ks for mu in mus]
    n_cells = len(cells)
    gen = torch.Generator().manual_seed(_seed_for(seed, 3))
    base = _init(gen, n_seeds, x_tr.shape[1], width, n_classes, sigma_w, sigma_b)
    with torch.no_grad():
        hidden0 = act(torch.matmul(x_tr, base[0].transpose(1, 2)) + base[1][:, None, :])
        directions = {p: mean_pattern(p, hidden0, y_tr, n_classes, gen) for p in patterns}
    n_epochs = int(epochs)
    acc = np.zeros((n_epochs + 1, n_cells, n_seeds))
    order_gen = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(4,)))
    orders = [order_gen.permutation(len(y_tr)) for _ in range(n_epochs)]
    cells_per_chunk = max(1, max_batch_nets // n_seeds)
    for c0 in progress(range(0, n_cells, cells_per_chunk), desc="symmetry-breaking scan"):
        chunk = cells[c0 : c0 + cells_per_chunk]
        params = [t.repeat(len(chunk), *([1] * (t.ndim - 1))) for t in base]
        with torch.no_grad():
            for ci, (p, k, mu) in enumerate(chunk):
                sl = slice(ci * n_seeds, (ci + 1) * n_seeds)
                params[2][sl, :k, :] += mu * directions[p][:, :k, :]
        for t in params:
            t.requires_grad_(True)
        opt = torch.optim.SGD(params, lr=lr)

        acc[0, c0 : c0 + len(chunk)] = _accuracy(params, x_te, y_te, act, n_seeds)
        for e in range(n_epochs):
            for b0 in range(0, len(y_tr), batch_size):
                idx = torch.as_tensor(orders[e][b0 : b0 + batch_size])
                opt.zero_grad()
                logits = _forward(params, x_tr[idx], act)  # (M, B, C)
                m = logits.shape[0]
                ce = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, n_classes), y_tr[idx].repeat(m), reduction="sum"
                )
                (ce / len(idx)).backward()
                opt.step()
            acc[e + 1, c0 : c0 + len(chunk)] = _accuracy(params, x_te, y_te, act, n_seeds)
    shape = (len(patterns), len(ks), len(mus), n_seeds)
    curves = acc.reshape((n_epochs + 1, *shape))
    return BreakingScan(patterns, ks, mus, curves[-1], curves)
