"""Datasets of the symmetry-and-training chapter: digits, a synthetic task, Fashion-MNIST.

* :func:`digits` -- scikit-learn's 8x8 handwritten digits (1797 images, ships with the
  package, no download);
* :func:`blobs` -- a synthetic Gaussian-mixture classification task whose class means are
  known, so the ground-truth direction is known by construction;
* :func:`load_fashion_mnist` -- Fashion-MNIST :cite:p:`Xiao:2017` from the standard IDX gzip
  files in a folder the user provides (``QFTML_FASHION_MNIST`` or a profile parameter);
  nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

#: File names of the Fashion-MNIST (and MNIST) distribution.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed): magic ``00 00 type ndim``, big-endian
    uint32 dimensions, then the data in C order (LeCun's MNIST format)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (magic bytes {raw[:4]!r})")
    kind, ndim = raw[2], raw[3]
    if kind not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX data type 0x{kind:02x}")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[kind])
    count = int(np.prod(shape)) if shape else 1
    offset = 4 + 4 * ndim
    if len(raw) - offset != count * dtype.itemsize:
        raise ValueError(
            f"{path}: expected {count * dtype.itemsize} data bytes for shape {shape}, "
            f"found {len(raw) - offset}"
        )
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)


def write_idx(path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as a gzip IDX file (used by the tests and for small fixtures)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.tobytes())


def fashion_mnist_dir(default=None) -> Path | None:
    """The Fashion-MNIST folder: ``QFTML_FASHION_MNIST``, else ``default``; None if absent."""
    folder = os.environ.get("QFTML_FASHION_MNIST") or default
    if not folder:
        return None
    folder = Path(folder).expanduser()
    if all((folder / name).exists() for name in IDX_FILES.values()):
        return folder
    return None


def load_fashion_mnist(folder, *, n_train: int | None = None, n_test: int | None = None):
    """``(x_train, y_train, x_test, y_test)`` from the four IDX files in ``folder``.

    Images are flattened and scaled to [0, 1] (float32); labels are int64.
    """
    folder = Path(folder)
    missing = [n for n in IDX_FILES.values() if not (folder / n).exists()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing Fashion-MNIST files {missing}")
    arrays = {k: read_idx(folder / n) for k, n in IDX_FILES.items()}
    out = []
    for split, limit in (("train", n_train), ("test", n_test)):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{folder}: {split} has {images.shape[0]} images but {labels.shape[0]} labels"
            )
        images = images.reshape(images.shape[0], -1)[:limit].astype(np.float32) / 255.0
        out += [images, labels[:limit].astype(np.int64)]
    return tuple(out)


def digits(*, test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn's digits, standardized with training statistics, split reproducibly."""
    from sklearn.datasets import load_digits

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction!r}")
    data = load_digits()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = perm[:n_test], perm[n_test:]
    mu, sd = x[train].mean(0), x[train].std(0) + 1.0
    return (x[train] - mu) / sd, y[train], (x[test] - mu) / sd, y[test]


def blobs(
    n_train: int,
    n_test: int,
    *,
    n_classes: int = 10,
    dim: int = 20,
    separation: float = 1.5,
    seed: int = 0,
):
    """Gaussian-mixture classification: class means $\\nu_c$ on a sphere of radius
    ``separation``, unit covariance, balanced classes. Returns ``(x_tr, y_tr, x_te, y_te,
    means)``; the means (the ground truth) are returned too."""
    if n_classes < 2 or dim < 1:
        raise ValueError(f"need n_classes >= 2 and dim >= 1; got {n_classes!r}, {dim!r}")
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((n_classes, dim))
    means *= separation / np.linalg.norm(means, axis=1, keepdims=True)

    def draw(n):
        y = rng.integers(0, n_classes, n)
        return (means[y] + rng.standard_normal((n, dim))).astype(np.float32), y.astype(np.int64)

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    return x_tr, y_tr, x_te, y_te, means
