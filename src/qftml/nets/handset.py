"""Hand-set networks for the flux tasks and the structure a count needs."""

from __future__ import annotations

import torch

from .build import SpecNet, from_spec
from .spec import _WEIGHTED, Layer, parse_spec


def divergence_kernel() -> torch.Tensor:
    """Weights ``(1, 4, 2, 2)`` of the bias-free 2 × 2 convolution that computes ``div k``.

    With the periodic padding of :func:`from_spec`, a 2 × 2 kernel at site ``(t, x)`` reads
    the sites ``(t, x), (t+1, x), (t, x+1), (t+1, x+1)``. The divergence at ``y = (t+1, x+1)``,
    ``k_{y,1} - k_{y-x_hat,1} + k_{y,2} - k_{y-t_hat,2}``, uses links of the three sites
    ``y, y - x_hat, y - t_hat``: they fit into this window, and into no 1 × 1 one. So the
    output at ``(t, x)`` is ``div k (t+1, x+1)``, i.e. ``roll(divergence(k), (-1, -1))``.
    Channels are those of :mod:`qftml.datasets.encoding` (``k_space, k_time, l_space, l_time``).
    """
    w = torch.zeros(1, 4, 2, 2)
    w[0, 0, 1, 1], w[0, 0, 1, 0] = 1.0, -1.0  # k_space: + k_{y,1} - k_{y - x_hat,1}
    w[0, 1, 1, 1], w[0, 1, 0, 1] = 1.0, -1.0  # k_time:  + k_{y,2} - k_{y - t_hat,2}
    return w


def flux_network(
    kind: str, *, sharpness: float = 20.0, dtype: torch.dtype = torch.float32
) -> SpecNet:
    """A hand-set EQ network that solves task 2 (``"detector"``) or task 3 (``"counter"``).

    Both start with ``Conv*(2x2, 4, 2)`` holding ``+div k`` and ``-div k``
    (:func:`divergence_kernel`) and a LeakyReLU of slope ``a = 0.01``.

    - ``"detector"``: ``GlobalMaxPool Linear(2, 1) Sigmoid`` with output
      ``sigmoid(sharpness (m_+ + m_- - 1))``, ``m_± = max_x LeakyReLU(±div k)``. The divergence
      sums to zero over the torus, so a violated configuration has a site with ``div >= 1``
      and one with ``div <= -1``: ``m_+ + m_- >= 2``, while a valid one has ``m_± = 0``. The
      output is ``sigmoid(-sharpness)`` or at least ``sigmoid(sharpness)``, on every lattice.
    - ``"counter"``: ``GlobalSumPool Linear*(2, 1)``, bias-free, with output
      ``sum_x |div k(x)| / 2``, using ``|d| = (LeakyReLU(d) + LeakyReLU(-d)) / (1 - a)``.
      Worms never share an end (:func:`qftml.datasets.insert_worms`), so a configuration
      with ``W`` worms has ``2 W`` sites with ``|div k| = 1``: the output is ``W``, the
      label of task 3, on every lattice (exactly up to round-off in ``dtype``).
    """
    if kind == "detector":
        model = from_spec("Conv*(2x2, 4, 2) LeakyReLU GlobalMaxPool Linear(2, 1) Sigmoid")
    elif kind == "counter":
        model = from_spec("Conv*(2x2, 4, 2) LeakyReLU GlobalSumPool Linear*(2, 1)")
    else:
        raise ValueError(f"unknown flux network {kind!r}; choose 'detector' or 'counter'")
    if not sharpness > 0:
        raise ValueError(f"sharpness must be positive; got {sharpness}")
    model = model.to(dtype)  # weights set in this precision (1 / (1 - a) is not exact)
    conv, act, _, lin = list(model.net)[:4]
    with torch.no_grad():
        w = divergence_kernel()[0]
        conv.weight.copy_(torch.stack([w, -w]))
        if kind == "detector":
            lin.weight.fill_(sharpness)
            lin.bias.fill_(-sharpness)
        else:
            lin.weight.fill_(0.5 / (1.0 - act.negative_slope))
    return model.eval()


def is_extensive(spec: str | list[Layer] | SpecNet) -> bool:
    """True if the output is a sum over the lattice of one local function of the input.

    That holds when a ``GlobalSumPool`` is followed only by bias-free ``Linear`` layers (a
    linear head), no ``Flatten`` precedes it, and the local function vanishes on an empty
    background: every ``Conv`` before the sum is bias-free and no ``Sigmoid`` (``!= 0`` at 0)
    precedes it (a bias, or sigmoid(0) = 1/2, adds a constant per site, so the output grows
    with the volume at zero input). Then regions farther apart than the receptive field
    contribute independently, ``f(A + B) = f(A) + f(B)`` on an empty background, which is
    what a count of local defects needs. An activation or a bias after the sum breaks the
    additivity (a bias-free nonlinear head still scales under tiling, by homogeneity, but
    does not add); a Flatten ties the network to one lattice.
    """
    layers = spec.layers if isinstance(spec, SpecNet) else spec
    layers = parse_spec(layers) if isinstance(layers, str) else layers
    kinds = [la.kind for la in layers]
    if "GlobalSumPool" not in kinds or "Flatten" in kinds:
        return False
    i = kinds.index("GlobalSumPool")
    body, head = layers[:i], layers[i + 1 :]
    local_ok = all(not (la.kind in _WEIGHTED and la.bias) and la.kind != "Sigmoid" for la in body)
    return local_ok and all(la.kind == "Linear" and not la.bias for la in head)
