"""The spec language of the source's backup tables: parse, format, classify, count.

The notation is described in :mod:`qftml.nets`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Canonical layer names and the spellings the parser accepts (case-insensitive).
_NAMES = {
    "conv": "Conv",
    "avgpool": "AvgPool",
    "maxpool": "MaxPool",
    "globalavgpool": "GlobalAvgPool",
    "globalmaxpool": "GlobalMaxPool",
    "globalsumpool": "GlobalSumPool",
    "flatten": "Flatten",
    "flattening": "Flatten",
    "linear": "Linear",
    "leakyrelu": "LeakyReLU",
    "sigmoid": "Sigmoid",
}
_WEIGHTED = {"Conv", "Linear"}
_LOCAL_POOLS = {"AvgPool", "MaxPool"}
_GLOBAL_POOLS = {"GlobalAvgPool", "GlobalMaxPool", "GlobalSumPool"}
_ARITY = {"Conv": 3, "AvgPool": 2, "MaxPool": 2, "Linear": 2}

_TOKEN = re.compile(r"\s*([A-Za-z]+)\s*(\*?)\s*(\(([^()]*)\))?")


@dataclass(frozen=True)
class Layer:
    """One layer of a spec. ``kernel`` for Conv/pools, ``stride`` for pools."""

    kind: str
    kernel: int | None = None
    stride: int | None = None
    n_in: int | None = None
    n_out: int | None = None
    bias: bool = True

    def __str__(self) -> str:
        star = "" if self.bias or self.kind not in _WEIGHTED else "*"
        k = f"{self.kernel}x{self.kernel}"
        if self.kind == "Conv":
            return f"Conv{star}({k}, {self.n_in}, {self.n_out})"
        if self.kind in _LOCAL_POOLS:
            return f"{self.kind}({k}, {self.stride})"
        if self.kind == "Linear":
            return f"Linear{star}({self.n_in}, {self.n_out})"
        return self.kind

    def n_params(self) -> int:
        """Weights plus biases: ``K^2 n_in n_out (+ n_out)`` (Conv), ``n_in n_out (+ n_out)``."""
        if self.kind == "Conv":
            return self.kernel**2 * self.n_in * self.n_out + (self.n_out if self.bias else 0)
        if self.kind == "Linear":
            return self.n_in * self.n_out + (self.n_out if self.bias else 0)
        return 0


def _kernel(text: str, token: str) -> int:
    t = text.replace("$", "").replace("\\times", "x").replace("×", "x").replace(" ", "").lower()
    m = re.fullmatch(r"(\d+)x(\d+)", t) or re.fullmatch(r"(\d+)", t)
    if not m:
        raise ValueError(f"bad kernel size {text.strip()!r} in {token!r}: expected 'KxK'")
    sizes = {int(g) for g in m.groups()}
    if len(sizes) != 1:
        raise ValueError(f"only square kernels are supported; got {text.strip()!r} in {token!r}")
    (k,) = sizes
    if k < 1:
        raise ValueError(f"kernel size must be positive; got {k} in {token!r}")
    return k


def _positive_int(text: str, what: str, token: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"bad {what} {text.strip()!r} in {token!r}: expected an integer") from None
    if value < 1:
        raise ValueError(f"{what} must be a positive integer; got {value} in {token!r}")
    return value


def _check_token_end(text: str, m: re.Match) -> None:
    """Name the real fault where a token stops early: a name glued to more characters
    (``Conv2d``) or an argument list whose ``)`` is missing."""
    if m.group(3) is not None:
        return
    glued = re.match(r"\w+", text[m.end(1) :])  # directly after the name
    if glued:
        raise ValueError(
            f"unknown layer {m.group(1) + glued.group(0)!r}; known: {sorted(set(_NAMES.values()))}"
        )
    rest = text[m.end() :].lstrip()
    if rest.startswith("("):
        raise ValueError(f"missing ')' in {(m.group(0).strip() + rest)[:40]!r}")


def parse_spec(spec: str) -> list[Layer]:
    """Parse a spec string into layers (syntax only; see :func:`from_spec` for shape checks).

    Raises ``ValueError`` naming the offending token for unknown layers, wrong argument
    counts, a bias star on a layer without weights, or unparseable text.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string; got {type(spec).__name__}")
    layers: list[Layer] = []
    pos = 0
    text = spec.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse spec at position {pos}: {text[pos : pos + 30]!r}")
        token = m.group(0).strip()
        name, star, args = m.group(1), m.group(2), m.group(4)
        _check_token_end(text, m)
        kind = _NAMES.get(name.lower())
        if kind is None:
            raise ValueError(
                f"unknown layer {name!r} in {token!r}; known: {sorted(set(_NAMES.values()))}"
            )
        if star and kind not in _WEIGHTED:
            raise ValueError(f"'*' (no bias) is meaningless for {kind} in {token!r}")
        arity = _ARITY.get(kind, 0)
        parts = [] if args is None or not args.strip() else args.split(",")
        if len(parts) != arity:
            raise ValueError(f"{kind} takes {arity} arguments, got {len(parts)} in {token!r}")
        if kind == "Conv":
            layer = Layer(
                kind,
                kernel=_kernel(parts[0], token),
                n_in=_positive_int(parts[1], "input channels", token),
                n_out=_positive_int(parts[2], "output channels", token),
                bias=not star,
            )
        elif kind in _LOCAL_POOLS:
            layer = Layer(
                kind,
                kernel=_kernel(parts[0], token),
                stride=_positive_int(parts[1], "stride", token),
            )
        elif kind == "Linear":
            layer = Layer(
                kind,
                n_in=_positive_int(parts[0], "input features", token),
                n_out=_positive_int(parts[1], "output features", token),
                bias=not star,
            )
        else:
            layer = Layer(kind)
        layers.append(layer)
        pos = m.end()
    if not layers:
        raise ValueError("empty spec")
    return layers


def format_spec(layers: list[Layer], sep: str = " ") -> str:
    """The canonical spec string of ``layers`` (inverse of :func:`parse_spec`)."""
    return sep.join(str(layer) for layer in layers)


def spec_family(layers: list[Layer] | str) -> str:
    """``"FL"`` if the spec flattens, ``"ST"`` if it pools with stride > 1, else ``"EQ"``."""
    layers = parse_spec(layers) if isinstance(layers, str) else layers
    if any(layer.kind == "Flatten" for layer in layers):
        return "FL"
    for layer in layers:
        if layer.kind in _GLOBAL_POOLS:
            break
        if layer.kind in _LOCAL_POOLS and layer.stride > 1:
            return "ST"
    return "EQ"


def spec_params(spec: str | list[Layer]) -> int:
    """Parameter count of a spec from the layer formulas alone (no model is built)."""
    layers = parse_spec(spec) if isinstance(spec, str) else spec
    return sum(layer.n_params() for layer in layers)
