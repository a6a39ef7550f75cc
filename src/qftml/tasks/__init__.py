"""The analysis of the source's tasks: one module per task, called by its chapters.

Each entry point takes plain values (tables of instances, parameters) and returns a result
object whose verdicts are computed, so that the tests can check them on constructed inputs
whose answer is known.
"""

from . import regression, statements

# detection and counting import the search (optuna): they load when a chapter imports them
__all__ = ["counting", "detection", "regression", "statements"]
