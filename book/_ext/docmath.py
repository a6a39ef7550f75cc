"""Sphinx extension for the API reference: inline ``$...$`` math in docstrings as ``:math:``.

The package's docstrings are reStructuredText (autodoc), with the book's notation for inline
math, ``$\\log|v| = a + s \\log N$``; this turns each such span into the ``:math:`` role before
autodoc parses it, so the formulas are typeset (MathJax) and their ``|`` are not read as
substitutions. Displayed ``$$ ... $$`` math is left alone.
"""

import re

_INLINE = re.compile(r"(?<![\\$])\$(?!\$)(?=\S)(.+?)(?<=\S)(?<![\\$])\$(?!\$)")


def dollars_to_math(text: str) -> str:
    """``a $x^2$ b`` -> ``a :math:`x^2` b``; literals (````...````) are kept as they are."""
    parts = re.split(r"(``.*?``)", text)
    return "".join(p if p.startswith("``") else _INLINE.sub(r":math:`\1`", p) for p in parts)


def _process(app, what, name, obj, options, lines):
    lines[:] = dollars_to_math("\n".join(lines)).split("\n")


def setup(app):
    app.connect("autodoc-process-docstring", _process)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
