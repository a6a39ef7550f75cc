r"""Training ensembles of networks: when gradient descent keeps or breaks a symmetry.

Many independent networks are trained at once: their parameters carry a leading ensemble
axis and the loss is the sum of the per-network losses, so one backward pass trains all of
them exactly as if trained one by one (same data order for all).

**Symmetry preservation** :cite:p:`Maiti:2021fpy`. If the initial density $P_\theta(0)$ and
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
    n_classes: int = 0  # classes of the task (k = n_classes shifts every row)

    def mean(self, pattern: str) -> tuple[np.ndarray, np.ndarray]:
        """Seed mean and standard error of the final accuracy, (n_k, n_mu) each."""
        a = self._pattern(pattern)
        return a.mean(-1), a.std(-1, ddof=1) / np.sqrt(a.shape[-1])

    def _pattern(self, pattern: str) -> np.ndarray:
        if pattern not in self.patterns:
            raise ValueError(f"pattern {pattern!r} was not scanned; scanned: {self.patterns}")
        return self.accuracy[self.patterns.index(pattern)]

    def paired_gain(self, pattern: str, against: str | None = None):
        """Seed-paired accuracy gain per cell, mean and standard error (n_k, n_mu) each.

        Against the unbroken network (the k = 0 cell, else the mu = 0 cell of the same k)
        or, with ``against``, against the same cell of another pattern (:func:`seed_paired`).
        """
        a = self._pattern(pattern)
        ref = self._pattern(against) if against is not None else unbroken(a, self.ks, self.mus)
        return seed_paired(a - ref)

    def breaking_cells(self) -> np.ndarray:
        """Cells (n_k, n_mu) with breaking at all: k > 0 and mu > 0."""
        return (self.ks[:, None] > 0) & (self.mus[None, :] > 0)

    def significant(self, pattern: str, level: float = 0.05, against: str | None = None):
        """Breaking cells whose paired gain is above (+1), below (-1) or within (0) the
        two-sided Student-t interval at ``level``; an exactly zero difference counts as 0."""
        return self._significant(*self.paired_gain(pattern, against), level)

    def _significant(self, gain, err, level):
        from scipy.stats import t as student_t

        q = student_t.ppf(1 - level / 2, self.accuracy.shape[-1] - 1)
        sign = np.where(gain > q * err, 1, np.where(gain < -q * err, -1, 0))
        sign[err == 0] = np.sign(gain[err == 0]).astype(int)
        sign[~self.breaking_cells()] = 0
        return sign

    def reading(self, level: float = 0.05) -> BreakingReading:
        """The computed reading of the scan (see :class:`BreakingReading`)."""
        from scipy.stats import spearmanr
        from scipy.stats import t as student_t

        cells = self.breaking_cells()
        per = {}
        for p in self.patterns:
            gain, err = self.paired_gain(p)
            s = self._significant(gain, err, level)[cells]
            rho = {}
            for name, axis_values in (("k", self.ks[:, None]), ("mu", self.mus[None, :])):
                grid = np.broadcast_to(axis_values, gain.shape)[cells]
                if np.ptp(gain[cells]) == 0 or np.ptp(grid) == 0:
                    rho[name] = (np.nan, np.nan)  # no trend to rank
                else:
                    r = spearmanr(grid, gain[cells])
                    rho[name] = (float(r.statistic), float(r.pvalue))
            per[p] = PatternReading(
                int((s > 0).sum()), int((s < 0).sum()), int(cells.sum()), rho["k"], rho["mu"]
            )
        direction = None
        if "aligned" in self.patterns and "random" in self.patterns:
            d = (self._pattern("aligned") - self._pattern("random"))[cells].mean(0)
            n = len(d)
            se = d.std(ddof=1) / np.sqrt(n)
            tstat = d.mean() / se if se > 0 else np.inf * np.sign(d.mean())
            p_one = float(student_t.sf(tstat, n - 1))
            direction = (float(d.mean()), float(se), p_one)
        full = None
        all_rows = np.flatnonzero(self.ks == self.n_classes)
        if "uniform" in self.patterns and len(all_rows):
            a = self._pattern("uniform")[all_rows[0]]  # (n_mu, n_seeds)
            full = float(np.abs(a - a[:1]).max())
        return BreakingReading(per, direction, full, level)


@dataclass(frozen=True)
class PatternReading:
    """Significant cells of one mean pattern and how its gain trends with k and mu_W."""

    helps: int  # breaking cells with a significant accuracy gain over no breaking
    hurts: int  # ... with a significant loss
    cells: int  # breaking cells (k > 0, mu_W > 0)
    rho_k: tuple[float, float]  # Spearman (rho, p) of the mean gain against k
    rho_mu: tuple[float, float]  # ... against mu_W


def unbroken(values: np.ndarray, ks, mus) -> np.ndarray:
    """Each seed's value for the unbroken network, broadcastable to ``values`` (n_k, n_mu,
    n_seeds): the k = 0 cell, else the mu = 0 cell of the same k (no row is shifted)."""
    if ks[0] == 0:
        return values[:1, :1, :]
    if mus[0] == 0:
        return values[:, :1, :]
    raise ValueError("no unbroken reference: the scan needs k = 0 or mu = 0")


def seed_paired(d: np.ndarray):
    """Mean and standard error over seeds (last axis) of a seed-paired difference ``d``.

    Common random numbers make the paired difference the right unit: seed s of every cell
    starts from the same network and sees the same minibatches.
    """
    return d.mean(-1), d.std(-1, ddof=1) / np.sqrt(d.shape[-1])


@dataclass(frozen=True)
class BreakingReading:
    """What the symmetry-breaking scan says, computed: per pattern, how many breaking cells
    help or hurt (two-sided paired t at ``level``); aligned minus random averaged over the
    breaking cells per seed (mean, s.e., one-sided p); the largest accuracy change of the
    uniform pattern with every row shifted (k = n_classes: the softmax ignores it)."""

    patterns: dict
    direction: tuple[float, float, float] | None
    full_uniform_change: float | None
    level: float

    @property
    def direction_matters(self) -> bool:
        """Aligned beats random of the same norm, one-sided at ``level``."""
        return self.direction is not None and self.direction[2] < self.level

    @property
    def ground_truth_helps(self) -> bool:
        """The source's conclusion: breaking does not always help (some pattern has a
        breaking cell that does not), and breaking along the ground truth does, more than a
        random direction of the same size."""
        aligned = self.patterns.get("aligned")
        not_always = any(r.helps < r.cells for r in self.patterns.values())
        return bool(aligned and aligned.helps > 0 and self.direction_matters and not_always)

    def lines(self) -> list[str]:
        out = []
        for p, r in self.patterns.items():
            out.append(
                f"{p:>10}: helps in {r.helps} and hurts in {r.hurts} of {r.cells} breaking cells;"
                f" gain vs k: rho = {r.rho_k[0]:+.2f} (p = {r.rho_k[1]:.2g}),"
                f" vs mu_W: rho = {r.rho_mu[0]:+.2f} (p = {r.rho_mu[1]:.2g})"
            )
        if self.full_uniform_change is not None:
            out.append(
                f"uniform with every row shifted (k = n_classes): largest accuracy change "
                f"{self.full_uniform_change:.2g} (the softmax symmetry predicts 0)"
            )
        if self.direction is not None:
            m, se, p = self.direction
            out.append(
                f"aligned - random over the breaking cells: {m:+.4f} +/- {se:.4f} "
                f"(one-sided p = {p:.2g}) -> the direction "
                f"{'matters' if self.direction_matters else 'is not shown to matter'}"
            )
        out.append(
            "source's conclusion (helps when along the ground truth, not always): "
            + ("reproduced" if self.ground_truth_helps else "not reproduced")
        )
        return out


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
    return BreakingScan(patterns, ks, mus, curves[-1], curves, n_classes)


# ----------------------------------------------------------------------------------------------
# The source's experiment: 784 -> 50 -> 10, bias-free ReLU, MSE to one-hot / one-cold targets
# ----------------------------------------------------------------------------------------------

TARGETS = ("one-hot", "one-cold")


def class_targets(labels, n_classes: int, target: str) -> np.ndarray:
    r"""MSE targets: one-hot $y_i = \delta_{ic}$ or one-cold $y_i = 1 - \delta_{ic}$."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {TARGETS}")
    onehot = np.eye(n_classes)[np.asarray(labels, dtype=int)]
    return onehot if target == "one-hot" else 1.0 - onehot


@dataclass(frozen=True)
class SourceBreakingScan:
    """Test loss / accuracy of every (target, k, mu, seed) network of the source's experiment.

    ``mu_star`` (n_targets,) is the mean that makes the initial mean output of a broken row
    equal to the mean target component, $\\mu^* = \\bar y / \\langle\\sum_j g_j\\rangle$
    (the initialization "proportional to the ground truth" for the uniform-mean pattern).
    """

    targets: tuple[str, ...]
    ks: np.ndarray
    mus: np.ndarray
    loss: np.ndarray  # (n_targets, n_k, n_mu, n_seeds), test MSE after training
    accuracy: np.ndarray  # same shape
    mu_star: np.ndarray

    def paired_gain(self, target: str):
        """Seed-paired loss reduction vs. no breaking (k = 0 or mu = 0): mean, s.e. (n_k, n_mu)."""
        loss = self.loss[self.targets.index(target)]
        return seed_paired(unbroken(loss, self.ks, self.mus) - loss)

    def helps(self, target: str, level: float = 0.05) -> np.ndarray:
        """Cells (n_k, n_mu) whose seed-paired loss reduction exceeds the one-sided t quantile."""
        from scipy.stats import t as student_t

        gain, err = self.paired_gain(target)
        q = student_t.ppf(1 - level, self.loss.shape[-1] - 1)
        return (gain > q * err) & (err > 0)


def source_breaking_scan(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    ks,
    mus,
    targets=TARGETS,
    n_seeds: int = 4,
    width: int = 50,
    epochs: int = 5,
    lr: float = 0.05,
    batch_size: int = 64,
    seed: int = 0,
    max_batch_nets: int = 1024,
) -> SourceBreakingScan:
    r"""The source's symmetry-breaking experiment :cite:p:`Maiti:talk`.

    Network $f = W^{(2)}\,\mathrm{ReLU}(W^{(1)}x)$ without biases, $d \to N \to C$.
    $W^{(1)}_{jk}\sim\mathcal N(0, 1/d)$; last layer
    $W^{(2)}_{ij}\sim\mathcal N(\mu_W, 1/N)$ for rows $i\le k$ and $\mathcal N(0, 1/N)$
    otherwise (the talk's "$\mathcal N(\mu, 1/\sqrt N)$" read as standard deviation
    $1/\sqrt N$). Trained by minibatch SGD on the MSE $\frac1B\sum_x|f(x)-y(x)|^2$ to one-hot
    or one-cold targets; accuracy is argmax (one-hot) or argmin (one-cold) of $f$.
    Network ``s`` of every cell shares its Gaussian draws (common random numbers).
    """
    x_tr = torch.as_tensor(np.asarray(x_train, dtype=np.float64))
    x_te = torch.as_tensor(np.asarray(x_test, dtype=np.float64))
    y_tr = np.asarray(y_train, dtype=int)
    y_te = np.asarray(y_test, dtype=int)
    ks = np.asarray(ks, dtype=int)
    mus = np.asarray(mus, dtype=float)
    targets = tuple(targets)
    n_classes = int(max(y_tr.max(), y_te.max()) + 1)
    if ks.min() < 0 or ks.max() > n_classes:
        raise ValueError(f"k must be in [0, {n_classes}]; got {ks.tolist()}")
    for t in targets:
        class_targets(y_tr[:1], n_classes, t)  # validates the name
    d_in = x_tr.shape[1]
    gen = torch.Generator().manual_seed(_seed_for(seed, 5))
    w1 = torch.randn(n_seeds, width, d_in, generator=gen, dtype=torch.float64) / math.sqrt(d_in)
    z2 = torch.randn(n_seeds, n_classes, width, generator=gen, dtype=torch.float64)
    w2 = z2 / math.sqrt(width)
    with torch.no_grad():
        gsum = torch.relu(torch.einsum("pd,mnd->mpn", x_tr, w1)).sum(-1).mean().item()
    ybar = np.array([class_targets(y_tr, n_classes, t).mean() for t in targets])
    mu_star = ybar / gsum
    cells = [(t, k, mu) for t in targets for k in ks for mu in mus]
    loss = np.zeros((len(cells), n_seeds))
    acc = np.zeros((len(cells), n_seeds))
    order_gen = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(6,)))
    orders = [order_gen.permutation(len(y_tr)) for _ in range(int(epochs))]
    per = max(1, max_batch_nets // n_seeds)
    for c0 in progress(range(0, len(cells), per), desc="symmetry-breaking scan (source)"):
        chunk = cells[c0 : c0 + per]
        a = w1.repeat(len(chunk), 1, 1).clone()
        b = w2.repeat(len(chunk), 1, 1).clone()
        ytr = torch.stack(
            [torch.as_tensor(class_targets(y_tr, n_classes, t)) for t, _, _ in chunk]
        ).repeat_interleave(n_seeds, 0)  # (M, P, C)
        yte = torch.stack(
            [torch.as_tensor(class_targets(y_te, n_classes, t)) for t, _, _ in chunk]
        ).repeat_interleave(n_seeds, 0)
        with torch.no_grad():
            for ci, (_, k, mu) in enumerate(chunk):
                b[ci * n_seeds : (ci + 1) * n_seeds, :k, :] += mu
        a.requires_grad_(True)
        b.requires_grad_(True)
        opt = torch.optim.SGD([a, b], lr=lr)

        def fwd(x, a=a, b=b):
            return torch.einsum("mpn,mcn->mpc", torch.relu(torch.einsum("pd,mnd->mpn", x, a)), b)

        for order in orders:
            for b0 in range(0, len(y_tr), batch_size):
                idx = torch.as_tensor(order[b0 : b0 + batch_size])
                opt.zero_grad()
                err = fwd(x_tr[idx]) - ytr[:, idx]
                (err.pow(2).sum() / len(idx)).backward()
                opt.step()
        with torch.no_grad():
            out = fwd(x_te)
            mse = (out - yte).pow(2).sum(-1).mean(-1).numpy()
            cold = np.array([t == "one-cold" for t, _, _ in chunk]).repeat(n_seeds)
            pred = np.where(cold[:, None], out.argmin(-1).numpy(), out.argmax(-1).numpy())
            hit = (pred == y_te[None, :]).mean(-1)
        loss[c0 : c0 + len(chunk)] = mse.reshape(-1, n_seeds)
        acc[c0 : c0 + len(chunk)] = hit.reshape(-1, n_seeds)
    shape = (len(targets), len(ks), len(mus), n_seeds)
    return SourceBreakingScan(targets, ks, mus, loss.reshape(shape), acc.reshape(shape), mu_star)
