"""Content keys: one hashing scheme for data, trained instances and pages.

A cached result is valid exactly as long as its key is unchanged, so a key must change
with everything that determines the result and with nothing else. Two rules follow:

- :func:`digest` hashes a JSON-able payload in canonical form (sorted keys), SHA-256.
- :func:`code_digest` hashes *code*, not text: the abstract syntax tree of each top-level
  definition, without docstrings, comments, formatting, import statements or the order and
  file the definitions sit in. A docstring edit, a reformat or moving a function to another
  module (a refactor that computes the same thing) keeps every key; changing an operation,
  a constant or a default changes it.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["code_digest", "definitions", "digest", "fingerprint", "normalized_source"]


def digest(payload: Any) -> str:
    """SHA-256 of ``payload`` as canonical JSON (sorted keys; non-JSON values by ``str``)."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(*arrays) -> str:
    """SHA-256 of the dtypes, shapes and bytes of arrays or tensors (a content key of data)."""
    h = hashlib.sha256()
    for a in arrays:
        if hasattr(a, "detach"):  # a torch tensor, without importing torch here
            a = a.detach().cpu().numpy()
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return tree


def _name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return ",".join(ast.unparse(t) for t in targets)
    return None


def _definition_nodes(source: str) -> dict[str, ast.stmt]:
    """``{name: node}`` of the top-level definitions of a module (see :func:`definitions`)."""
    tree = _strip_docstrings(ast.parse(source))
    out = {}
    for node in tree.body:
        name = _name(node)
        if name is None or name == "__all__":
            continue
        out[name] = node
    return out


def definitions(source: str) -> dict[str, str]:
    """``{name: normalized code}`` of the top-level definitions and assignments of a module.

    Imports, ``__all__``, bare expressions (the module docstring) and ``if TYPE_CHECKING``
    blocks carry no computation and are left out.
    """
    return {
        name: ast.dump(node, annotate_fields=False, include_attributes=False)
        for name, node in _definition_nodes(source).items()
    }


def _referenced(node: ast.AST) -> set[str]:
    """Every identifier a definition mentions (names and attribute names)."""
    out = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            out.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            out.add(sub.attr)
    return out


def normalized_source(source: str) -> str:
    """The module's definitions in a canonical order, as one string (see :func:`definitions`)."""
    return "\n".join(f"{k}={v}" for k, v in sorted(definitions(source).items()))


def code_digest(paths: Iterable[str | Path], roots: Iterable[str] | None = None) -> str:
    """SHA-256 of the definitions of several modules, pooled by name (file-independent).

    With ``roots`` only the definitions reachable from them count: the roots, every
    top-level definition they mention by name (as a name or an attribute), and so on.
    Adding or editing a function that the roots never reach then keeps the digest, while
    any change to the code they run changes it. (A mention is enough to be included, so the
    closure errs on the side of too much.)

    Raises ``ValueError`` if two of the modules define one name differently: the digest
    could not tell which one runs, or if a root is not defined in them.
    """
    pooled: dict[str, str] = {}
    nodes: dict[str, ast.stmt] = {}
    for path in paths:
        for name, node in _definition_nodes(Path(path).read_text()).items():
            code = ast.dump(node, annotate_fields=False, include_attributes=False)
            if name in pooled and pooled[name] != code:
                raise ValueError(f"{path}: {name!r} is also defined, differently, elsewhere")
            pooled[name], nodes[name] = code, node
    if roots is None:
        return digest(pooled)
    by_target: dict[str, list[str]] = {}
    for name in pooled:  # an assignment "a, b = ..." is reached through a or b
        for part in name.replace("(", "").replace(")", "").split(","):
            by_target.setdefault(part.strip(), []).append(name)
    todo = list(roots)
    missing = [r for r in todo if r not in by_target]
    if missing:
        raise ValueError(f"root(s) {missing} are not defined in the given modules")
    seen: set[str] = set()
    while todo:
        for name in by_target.get(todo.pop(), ()):
            if name not in seen:
                seen.add(name)
                todo.extend(_referenced(nodes[name]))
    return digest({name: pooled[name] for name in sorted(seen)})
