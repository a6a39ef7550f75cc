"""EQ / ST / FL convolutional networks built from the notation of the source's backup tables.

A *spec* is a whitespace-separated list of layers, e.g. ::

    Conv(2x2, 4, 32) LeakyReLU Conv(1x1, 32, 32) LeakyReLU GlobalMaxPool Linear*(32, 1) Sigmoid

as in the backup slides of :cite:p:`Favoni:2021talk` (architectures of :cite:p:`Bulusu:2021njs`).
Layers (``*`` after the name: no bias; ``x``, ``×`` or ``\\times`` in kernel sizes):

========================  =============================================================
``Conv(KxK, in, out)``    convolution with periodic padding: the lattice size is kept
``AvgPool(KxK, s)``       average pooling, stride ``s`` (floor mode: leftover sites are
``MaxPool(KxK, s)``       dropped); stride 1 pads periodically and keeps the size
``GlobalAvgPool``         mean / max / sum over all lattice sites: ``(B, C, T, X) -> (B, C)``
``GlobalMaxPool``
``GlobalSumPool``
``Flatten``               (also ``Flattening``) ``(B, C, T, X) -> (B, C*T*X)``
``Linear(in, out)``       dense layer
``LeakyReLU``             slope 0.01 (PyTorch's default)
``Sigmoid``
========================  =============================================================

Inputs have shape ``(batch, 4, N_t, N_x)`` (the dual fields ``k_s, k_t, l_s, l_t``).

Translations. Let ``T_a`` shift the lattice by ``a = (a_t, a_x)`` on the torus. A periodic
stride-1 convolution commutes with ``T_a`` and a global pooling is invariant, so
``f(T_a x) = f(x)`` exactly for every ``a`` in an **EQ** network. A pooling with stride
``s`` maps ``T_{s b}`` to ``T_b`` only when ``a = s b`` (and ``s`` divides the lattice), so an
**ST** network is invariant only under shifts by multiples of its total stride. A
**Flatten** layer ties each weight to a lattice site: an **FL** network has no translation
symmetry and is tied to the lattice size it was built for.
"""

from .build import PeriodicConv2d, SpecNet, from_spec, n_params
from .handset import divergence_kernel, flux_network, is_extensive
from .probes import equivariance_error
from .published import PUBLISHED, Published, published
from .spec import Layer, format_spec, parse_spec, spec_family, spec_params

__all__ = [
    "Layer",
    "SpecNet",
    "PeriodicConv2d",
    "Published",
    "PUBLISHED",
    "parse_spec",
    "format_spec",
    "spec_family",
    "spec_params",
    "from_spec",
    "n_params",
    "published",
    "equivariance_error",
    "divergence_kernel",
    "flux_network",
    "is_extensive",
]
