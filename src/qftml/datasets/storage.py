"""HDF5 storage with atomic writes, a content key and a checksum; a content-keyed file cache.

A dataset file holds named integer/float arrays and, as root attributes, its provenance
(every parameter, the seed, the sampler settings, the measured autocorrelation time, the
package version). Two attributes are written last and make a file *complete*:

- ``content_key``: hash of everything the data depend on (parameters, seed, sampler
  settings, generating code; see :func:`qftml.datasets.jobs.Job.content_key`). A file
  whose key differs from the requested one is *stale*.
- ``checksum``: SHA-256 of every array (name, dtype, shape, bytes) and every attribute. A
  file whose recomputed checksum differs, or that HDF5 cannot read, is *corrupt*.

Writes go to ``<name>.tmp-<pid>@<host>.<token>`` (:func:`qftml.processes.temporary_path`)
and are renamed with :func:`os.replace` only once
complete, so an interrupted run never leaves a file under the final name. Datasets are
written without HDF5 timestamps (``track_times=False``), so the same data give the same
bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..processes import clean_temporaries, temporary_path  # noqa: F401 (re-exported)

#: Storage format tag, part of every content key and stored in every file.
FORMAT = "qftml.datasets/1"


class DatasetFileError(RuntimeError):
    """A dataset file that cannot be used as it is (the cache regenerates it)."""


class IncompleteFile(DatasetFileError):
    """The file lacks its final checksum: its write did not finish."""


class CorruptFile(DatasetFileError):
    """The file cannot be read, or its content does not match its checksum."""


class StaleFile(DatasetFileError):
    """The file is intact but was made for other parameters, seed or code."""


def _canonical(value: Any) -> Any:
    """JSON-ready, deterministic form of an attribute value."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    return value


def checksum(arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> str:
    """SHA-256 of the arrays (sorted by name: name, dtype, shape, bytes) and the attributes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.asarray(arrays[name], order="C")
        h.update(name.encode())
        h.update(a.dtype.str.encode())
        h.update(json.dumps(a.shape).encode())
        h.update(a.tobytes())
    h.update(json.dumps(_canonical(dict(attrs)), sort_keys=True).encode())
    return h.hexdigest()


def compact_int(a: np.ndarray) -> np.ndarray:
    """``a`` in the smallest signed integer type that holds its values (int8, int16, ...)."""
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"compact_int needs an integer array; got dtype {a.dtype}")
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for dtype in (np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return a.astype(dtype, copy=False)
    raise ValueError(f"values out of int64 range: [{lo}, {hi}]")  # pragma: no cover


def _encode_attr(value: Any) -> Any:
    value = _canonical(value)
    if isinstance(value, dict | list) or value is None:
        return "json:" + json.dumps(value, sort_keys=True)
    return value


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value.startswith("json:"):
        return json.loads(value[5:])
    if isinstance(value, np.generic):
        return value.item()
    return value


def write(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
    content_key: str,
    *,
    _hook: Callable[[str], None] | None = None,
) -> Path:
    """Write ``arrays`` and ``attrs`` atomically to ``path`` (HDF5), marked with ``content_key``.

    The arrays are gzip-compressed (with byte shuffling); ``content_key`` and ``checksum``
    are written last. The HDF5 image is built in memory, written to a temporary file and
    renamed onto ``path``, so a disk fault is a plain ``OSError`` naming ``path``. ``_hook``
    is called with a stage name during the write (tests use it to simulate an interruption).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for name in ("content_key", "checksum", "format"):
        if name in attrs:
            raise ValueError(f"attribute name {name!r} is reserved")
    attrs = {**attrs, "format": FORMAT}
    image = io.BytesIO()  # HDF5 is built in memory: a failed disk write never reaches h5py
    with h5py.File(image, "w", libver=("earliest", "v110"), track_order=True) as f:
        for name in sorted(arrays):
            a = np.asarray(arrays[name], order="C")
            opts: dict[str, Any] = {"track_times": False}
            if a.ndim and a.size:
                opts.update(compression="gzip", compression_opts=4, shuffle=True)
            f.create_dataset(name, data=a, **opts)
        if _hook:
            _hook("arrays")
        for name, value in attrs.items():
            f.attrs[name] = _encode_attr(value)
        f.attrs["content_key"] = content_key
        f.attrs["checksum"] = checksum(arrays, {**attrs, "content_key": content_key})
    data = image.getbuffer()
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as fh:
            half = len(data) // 2
            fh.write(data[:half])
            if _hook:
                _hook("partial")
            fh.write(data[half:])
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):  # a full disk, a file-size limit, a read-only folder
            raise OSError(exc.errno, f"cannot write dataset {path}: {exc.strerror}") from exc
        raise
    return path


def read(
    path: str | Path, content_key: str | None = None, *, verify: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a complete dataset file; returns ``(arrays, attrs)``.

    Raises :class:`IncompleteFile`, :class:`CorruptFile` or :class:`StaleFile` (when
    ``content_key`` is given and differs); ``FileNotFoundError`` if there is no file.
    ``verify=False`` skips the checksum (the content key is still compared).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        with h5py.File(path, "r") as f:
            raw_attrs = {name: _decode_attr(f.attrs[name]) for name in f.attrs}
            if "checksum" not in raw_attrs or "content_key" not in raw_attrs:
                raise IncompleteFile(f"{path}: no checksum (the write did not complete)")
            if content_key is not None and raw_attrs["content_key"] != content_key:
                raise StaleFile(
                    f"{path}: made for content key {raw_attrs['content_key'][:12]}…, "
                    f"requested {content_key[:12]}… (parameters, seed or code changed)"
                )
            arrays = {name: f[name][()] for name in f}
    except DatasetFileError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise CorruptFile(f"{path}: unreadable HDF5 ({type(exc).__name__}: {exc})") from exc
    stored = raw_attrs.pop("checksum")
    if verify and checksum(arrays, raw_attrs) != stored:
        raise CorruptFile(f"{path}: checksum mismatch (the content was altered)")
    return arrays, raw_attrs


@dataclass
class CacheResult:
    """Outcome of :func:`cached`: the data, and what the cache did to get them."""

    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any]
    #: ``"hit"`` (read from disk), ``"new"`` (no file) or ``"regenerated"`` (file unusable)
    status: str
    #: why a file was regenerated (empty for hits and new files)
    reason: str
    seconds: float


def status(path: str | Path, content_key: str, *, verify: bool = True) -> tuple[str, str]:
    """``("hit", "")``, ``("new", "")`` or ``("regenerate", reason)`` for a file and key."""
    try:
        read(path, content_key, verify=verify)
    except FileNotFoundError:
        return "new", ""
    except StaleFile as exc:
        return "regenerate", f"stale: {exc}"
    except IncompleteFile as exc:
        return "regenerate", f"incomplete: {exc}"
    except CorruptFile as exc:
        return "regenerate", f"corrupt: {exc}"
    return "hit", ""


def cached(
    path: str | Path,
    content_key: str,
    make: Callable[[], tuple[Mapping[str, np.ndarray], Mapping[str, Any]]],
    *,
    verify: bool = True,
    log: Callable[[str], None] | None = print,
) -> CacheResult:
    """Return the data stored at ``path`` for ``content_key``, generating them if needed.

    A missing, incomplete, corrupt or stale file is (re)generated with ``make()`` and
    written atomically; ``log`` receives a message saying why.
    """
    start = time.perf_counter()
    reason = ""
    try:
        arrays, attrs = read(path, content_key, verify=verify)
        return CacheResult(arrays, attrs, "hit", "", time.perf_counter() - start)
    except FileNotFoundError:
        state = "new"
    except DatasetFileError as exc:
        state = "regenerated"
        kind = type(exc).__name__.removesuffix("File").lower()
        reason = f"{kind}: {exc}"
        if log:
            log(f"regenerating {path} ({reason})")
    arrays, attrs = make()
    write(path, arrays, attrs, content_key)
    arrays, attrs = read(path, content_key, verify=False)
    return CacheResult(arrays, attrs, state, reason, time.perf_counter() - start)
