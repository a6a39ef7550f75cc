r"""Ensembles of randomly initialized fully connected networks, sampled in bounded memory.

Conventions (the NN-QFT papers :cite:p:`Halverson:2020trp,Maiti:2021fpy`): for inputs
$x\in\mathbb{R}^{d}$, hidden widths $N_1,\dots,N_L$ and $D$ outputs,

$$
z^0 = W^0 x + b^0,\qquad z^{l} = W^{l} \varphi(z^{l-1}) + b^{l},\qquad f = z^L ,
$$

with $W^0_{jk}\sim\mathcal N(0,\sigma_w^2/d)$, $W^{l}_{jk}\sim\mathcal N(0,\sigma_w^2/N_l)$ and
every bias $\sim\mathcal N(0,\sigma_b^2)$. Activations ``erf``, ``relu``, ``tanh`` and the
Gauss-net ``gauss``, $\varphi(z^0(x)) = e^{z^0(x)} / e^{\sigma_b^2 + \sigma_w^2|x|^2/d}$
(first layer only: its normalization is the variance of $z^0(x)$, so that
$\mathbb E[\varphi\varphi']$ is translation invariant). ``cos`` is the 1-periodic
$\varphi(u) = \cos(2\pi u)$ used with a bias uniform on the circle (translation example).

The knobs of :class:`Ensemble` that *break* a symmetry (``input_scale``, ``output_scale``,
``output_mean``, ``bias_range``) exist for the counterexamples of the symmetry chapter.

Reproducibility and memory: networks are generated in blocks of
``max(1, UNITS_PER_BLOCK // max(widths))`` networks; block ``i`` draws from its own torch
generator seeded by ``numpy.random.SeedSequence(seed, spawn_key=(1, i))``. Network ``n`` is
therefore the same whatever the number of networks requested, the inputs, the number of
threads or the memory chunking: same seed, same networks. Evaluation inside a block is
chunked over the inputs, so memory is bounded independently of ``n_nets``.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..progress import progress

#: Activations known to the sampler (``gauss`` and ``cos`` only in the first hidden layer).
ACTIVATIONS = ("erf", "relu", "tanh", "gauss", "cos")
#: Hidden units (networks x width) generated per block: fixes the random streams.
UNITS_PER_BLOCK = 2**19
#: Hidden activations (units x inputs) held in memory at once inside a block.
ACTIVATIONS_PER_CHUNK = 2**24


def _seed_for(seed: int, *key: int) -> int:
    """A 63-bit torch seed derived from ``SeedSequence(seed, spawn_key=key)``."""
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _check_x(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n_points, d_in); got shape {x.shape}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x must have at least one point and one dimension; got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains non-finite values")
    return x


@dataclass(frozen=True)
class Ensemble:
    r"""A distribution over networks: architecture plus parameter distributions.

    ``widths`` are the hidden widths ``(N_1, ..., N_L)``. ``complex_output`` draws the last
    layer as $(A + iB)/\sqrt 2$ with $A, B$ independent copies of the real layer, so that
    $\mathbb E[f_i \bar f_j] = \delta_{ij} K$ and $\mathbb E[f_i f_j] = 0$ (U(D) example).
    ``input_bias`` is ``"normal"`` ($\mathcal N(0,\sigma_b^2)$) or ``"circle"`` (uniform on
    $[0, \text{bias\_range})$, the circle when ``bias_range = 1``), the latter with
    ``fixed_input_weights`` reproducing the translation example: $z^0 = (W^0x \bmod 1) + b^0$
    with one deterministic $W^0$ shared by all networks.

    Symmetry breakers: ``input_scale`` (length ``d_in``) multiplies the columns of $W^0$,
    ``output_scale`` (length ``d_out``) multiplies the rows of the last $W$ and $b$,
    ``output_mean`` shifts the mean of every entry of the first ``output_mean_rows`` rows of
    the last $W$.
    """

    arch: str = "erf"
    widths: tuple[int, ...] = (100,)
    d_out: int = 1
    sigma_w: float = 1.0
    sigma_b: float = 1.0
    complex_output: bool = False
    input_bias: str = "normal"
    bias_range: float = 1.0
    fixed_input_weights: bool = False
    input_scale: tuple[float, ...] | None = None
    output_scale: tuple[float, ...] | None = None
    output_mean: float = 0.0
    output_mean_rows: int = 0
    _fixed: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if self.arch not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.arch!r}; choose one of {ACTIVATIONS}")
        widths = tuple(int(w) for w in np.atleast_1d(self.widths))
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be positive integers; got {self.widths!r}")
        object.__setattr__(self, "widths", widths)
        if self.arch in ("gauss", "cos") and len(widths) != 1:
            raise ValueError(f"activation {self.arch!r} is defined for one hidden layer only")
        if int(self.d_out) < 1:
            raise ValueError(f"d_out must be >= 1; got {self.d_out!r}")
        if not (self.sigma_w > 0 and self.sigma_b >= 0):
            raise ValueError(
                f"need sigma_w > 0 and sigma_b >= 0; got {self.sigma_w!r}, {self.sigma_b!r}"
            )
        if self.input_bias not in ("normal", "circle"):
            raise ValueError(f"input_bias must be 'normal' or 'circle'; got {self.input_bias!r}")
        if self.arch == "cos" and self.input_bias != "circle":
            raise ValueError("the 'cos' activation needs input_bias='circle'")
        if self.arch == "gauss" and self.input_bias != "normal":
            raise ValueError("the Gauss-net normalization assumes input_bias='normal'")
        if not 0 < self.bias_range <= 1:
            raise ValueError(f"bias_range must be in (0, 1]; got {self.bias_range!r}")
        if self.output_scale is not None and len(self.output_scale) != self.d_out:
            raise ValueError(
                f"output_scale needs d_out={self.d_out} entries; got {self.output_scale!r}"
            )
        if not 0 <= self.output_mean_rows <= self.d_out:
            raise ValueError(f"output_mean_rows must be in [0, d_out]; got {self.output_mean_rows}")

    # ------------------------------------------------------------------ parameters
    def _input_weights(self, gen, n, d_in, dtype):
        """First-layer weights (n, N_1, d_in); shared by all nets if ``fixed_input_weights``."""
        n1 = self.widths[0]
        scale = torch.full((d_in,), self.sigma_w / math.sqrt(d_in), dtype=dtype)
        if self.input_scale is not None:
            if len(self.input_scale) != d_in:
                raise ValueError(f"input_scale needs d_in={d_in} entries; got {self.input_scale!r}")
            scale = scale * torch.as_tensor(self.input_scale, dtype=dtype)
        if self.fixed_input_weights:
            key = (d_in, str(dtype))
            if key not in self._fixed:
                g0 = torch.Generator().manual_seed(self._fixed.get("seed", 0))
                self._fixed[key] = torch.randn(n1, d_in, generator=g0, dtype=dtype) * scale
            return self._fixed[key].expand(n, n1, d_in)
        return torch.randn(n, n1, d_in, generator=gen, dtype=dtype) * scale

    def _sample_block(self, gen, n, d_in, dtype):
        """Draw the parameters of ``n`` networks, in a fixed order, from generator ``gen``."""
        w0 = self._input_weights(gen, n, d_in, dtype)
        n1 = self.widths[0]
        if self.input_bias == "normal":
            b0 = torch.randn(n, n1, generator=gen, dtype=dtype) * self.sigma_b
        else:
            b0 = torch.rand(n, n1, generator=gen, dtype=dtype) * self.bias_range
        hidden = []
        for n_in, n_out in zip(self.widths[:-1], self.widths[1:], strict=True):
            w = torch.randn(n, n_out, n_in, generator=gen, dtype=dtype)
            w *= self.sigma_w / math.sqrt(n_in)
            b = torch.randn(n, n_out, generator=gen, dtype=dtype) * self.sigma_b
            hidden.append((w, b))
        nl, d = self.widths[-1], self.d_out
        parts = 2 if self.complex_output else 1
        wl = torch.randn(parts, n, d, nl, generator=gen, dtype=dtype) * (
            self.sigma_w / math.sqrt(nl)
        )
        bl = torch.randn(parts, n, d, generator=gen, dtype=dtype) * self.sigma_b
        if self.complex_output:
            wl /= math.sqrt(2.0)
            bl /= math.sqrt(2.0)
        if self.output_mean and self.output_mean_rows:
            wl[0, :, : self.output_mean_rows, :] += self.output_mean
        if self.output_scale is not None:
            s = torch.as_tensor(self.output_scale, dtype=dtype)
            wl *= s[:, None]
            bl *= s
        return w0, b0, hidden, wl, bl

    # ------------------------------------------------------------------ forward pass
    def _first_layer(self, w0, b0, xt, var0):
        z = torch.matmul(w0, xt.T)  # (n, N1, P)
        if self.input_bias == "circle":
            z = torch.remainder(z, 1.0)
        z += b0[..., None]
        if self.arch == "gauss":
            z -= var0  # exp(z) / exp(Var z(x)), Var z(x) = sigma_b^2 + sigma_w^2 |x|^2 / d
            return torch.exp_(z)
        return self._act(z)

    def _act(self, z):
        if self.arch == "erf":
            return torch.erf_(z)
        if self.arch == "relu":
            return torch.relu_(z)
        if self.arch == "tanh":
            return torch.tanh_(z)
        if self.arch == "cos":
            return torch.cos_(z.mul_(2 * math.pi))
        raise AssertionError(self.arch)  # pragma: no cover

    def _forward(self, params, xt, var0):
        w0, b0, hidden, wl, bl = params
        h = self._first_layer(w0, b0, xt, var0)
        for w, b in hidden:
            h = self._act(torch.matmul(w, h) + b[..., None])
        out = torch.matmul(wl, h) + bl[..., None]  # (parts, n, D, P)
        return out.transpose(-1, -2)  # (parts, n, P, D)

    def _input_variance(self, x):
        d_in = x.shape[1]
        s2 = np.ones(d_in) if self.input_scale is None else np.asarray(self.input_scale) ** 2
        return self.sigma_b**2 + self.sigma_w**2 * (x**2 @ s2) / d_in

    # ------------------------------------------------------------------ public
    def sample(
        self,
        x,
        n_nets: int,
        *,
        seed: int = 0,
        n_jobs: int | None = None,
        dtype: str = "float32",
        show_progress: bool = False,
    ) -> np.ndarray:
        """Outputs of ``n_nets`` independent networks at the inputs ``x`` (n_points, d_in).

        Returns float64 (or complex128) of shape ``(n_nets, n_points, d_out)``. The
        computation runs in ``dtype`` (``"float32"``: 2-3 times faster; rounding is far
        below the Monte Carlo error of any correlator) on ``n_jobs`` threads (default: all
        cores). Same seed, same networks, independent of ``n_jobs`` and of ``x``; the two
        dtypes draw different (equally distributed) streams.
        """
        x = _check_x(x)
        if int(n_nets) < 1:
            raise ValueError(f"n_nets must be >= 1; got {n_nets!r}")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
        n_nets = int(n_nets)
        tdt = getattr(torch, dtype)
        if self.fixed_input_weights:
            self._fixed["seed"] = _seed_for(seed, 0)
            self._fixed.pop((x.shape[1], str(tdt)), None)
        n_points, d_in = x.shape
        block = max(1, UNITS_PER_BLOCK // max(self.widths))
        n_blocks = -(-n_nets // block)
        out_dtype = np.complex128 if self.complex_output else np.float64
        out = np.empty((n_nets, n_points, self.d_out), dtype=out_dtype)
        xt = torch.as_tensor(x, dtype=tdt)
        var0 = torch.as_tensor(self._input_variance(x), dtype=tdt)
        p_chunk = max(1, ACTIVATIONS_PER_CHUNK // (block * max(self.widths)))

        def run(i):
            n = min(block, n_nets - i * block)
            gen = torch.Generator().manual_seed(_seed_for(seed, 1, i))
            with torch.no_grad():
                params = self._sample_block(gen, block, d_in, tdt)
                if n < block:  # partial last block: the same first n networks as a full one
                    params = _trim(params, n)
                for p0 in range(0, n_points, p_chunk):
                    sl = slice(p0, p0 + p_chunk)
                    y = self._forward(params, xt[sl], var0[sl]).double().numpy()
                    rows = slice(i * block, i * block + n)
                    out[rows, sl] = y[0] + 1j * y[1] if self.complex_output else y[0]
            return n

        jobs = n_jobs or os.cpu_count() or 1
        bar = progress(total=n_nets, desc="networks", disable=None if show_progress else True)
        if jobs == 1 or n_blocks == 1:
            for i in range(n_blocks):
                bar.update(run(i))
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for n in pool.map(run, range(n_blocks)):
                    bar.update(n)
        bar.close()
        return out

    def with_(self, **changes) -> Ensemble:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return replace(self, _fixed={}, **changes)


def _trim(params, n):
    """Parameters of the first ``n`` networks of a block (draws are made for a full block)."""
    w0, b0, hidden, wl, bl = params
    return (w0[:n], b0[:n], [(w[:n], b[:n]) for w, b in hidden], wl[:, :n], bl[:, :n])


def ensemble_outputs(
    arch: str,
    width: int,
    x,
    n_nets: int,
    *,
    sigma_w: float = 1.0,
    sigma_b: float = 1.0,
    d_out: int = 1,
    seed: int = 0,
    n_jobs: int | None = None,
    dtype: str = "float32",
) -> np.ndarray:
    r"""Outputs ``(n_nets, n_points, d_out)`` of single-hidden-layer networks of width ``width``.

    $f(x) = W^1\varphi(W^0x + b^0) + b^1$ with $W^0\sim\mathcal N(0,\sigma_w^2/d_{in})$,
    $b^0, b^1\sim\mathcal N(0,\sigma_b^2)$, $W^1\sim\mathcal N(0,\sigma_w^2/N)$ and
    ``arch`` in ``{"erf", "relu", "gauss"}`` (also ``"tanh"``) :cite:p:`Halverson:2020trp`.
    See :class:`Ensemble` for deeper, complex-output and symmetry-breaking variants.
    """
    if arch not in ("erf", "relu", "gauss", "tanh"):
        raise ValueError(f"unknown arch {arch!r}; choose 'erf', 'relu', 'gauss' or 'tanh'")
    ens = Ensemble(arch=arch, widths=(int(width),), d_out=d_out, sigma_w=sigma_w, sigma_b=sigma_b)
    return ens.sample(x, n_nets, seed=seed, n_jobs=n_jobs, dtype=dtype)
