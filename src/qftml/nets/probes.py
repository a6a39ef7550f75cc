"""Measured symmetry of a network: its output change under lattice translations."""

from __future__ import annotations

import torch
from torch import nn


def equivariance_error(
    model: nn.Module, x: torch.Tensor, shifts=None, *, relative: bool = True
) -> dict[tuple[int, int], float]:
    """Output change under lattice translations, per shift ``(a_t, a_x)``.

    For an invariant output (global pooling, Flatten) this is
    ``max |f(T_a x) - f(x)|``; for an output on the lattice (a fully convolutional net)
    it is ``max |f(T_a x) - T_a f(x)|``, the equivariance defect (cf. escnn's
    ``check_equivariance``). With ``relative`` the maximum is divided by ``max |f(x)|``.
    ``shifts`` defaults to every translation of the ``N_t × N_x`` torus.
    Exactly 0 (up to float rounding) for EQ networks; see the module docstring.
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape (batch, C, N_t, N_x); got {tuple(x.shape)}")
    nt, nx = x.shape[-2:]
    if shifts is None:
        shifts = [(a, b) for a in range(nt) for b in range(nx)]
    was_training = model.training
    model.eval()
    out = {}
    try:
        with torch.no_grad():
            ref = model(x)
            scale = ref.abs().max().item() if relative else 1.0
            scale = scale if scale > 0 else 1.0
            field_out = ref.dim() == 4 and tuple(ref.shape[-2:]) == (nt, nx)
            for a_t, a_x in shifts:
                y = model(torch.roll(x, shifts=(int(a_t), int(a_x)), dims=(-2, -1)))
                target = torch.roll(ref, (int(a_t), int(a_x)), dims=(-2, -1)) if field_out else ref
                out[(int(a_t), int(a_x))] = (y - target).abs().max().item() / scale
    finally:
        model.train(was_training)
    return out
