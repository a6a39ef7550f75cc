# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (chap-statements)=
# # The source's statements at full statistics
#
# Every statement of the first talk {cite}`Favoni:2021talk`, the chapter that tests it, and
# its verdict at the source's statistics, computed when this page is built from the results
# store of the `paper` profile ({mod}`qftml.results`, see {ref}`reproduce`) by the functions
# of {mod}`qftml.tasks`. A statement whose experiment has no complete part in the store yet
# says so; the chapters show the live small-scale run beside the stored one. The verdict
# criteria (one-sided Mann–Whitney tests that must all reject at 5 %, Student-t intervals of
# slopes, Holm's correction for the augmentation tests, paired Wilcoxon tests for the kink,
# one-phase against both-phase training on the phase not trained on)
# are stated in each chapter; the summary slide's statements on all tasks are confirmed only
# when the part of every task holds ({mod}`qftml.tasks.statements`, {ref}`deviations`). Each
# chapter name links to that chapter's full-statistics section. The statements of the second
# talk {cite}`Maiti:talk`, and the validation of the model's sampler that every task rests on,
# follow in a second table.

# %% tags=["parameters"]
profile = "ci"

# %%
import pandas as pd

from qftml import datasets, results, verdicts
from qftml.profiles import setup
from qftml.tasks import statements

P = setup("00_statements", profile)

# %%
flux = datasets.load_task2(profile, "val")  # for the structural 2x2 check
table = statements.table("paper", flux_data=flux, seed=P["seed"])
cover = results.summary()
TRAINED = ("task1", "task1_phases", "task2", "task3")
SEARCHES = ("task1_search", "task2_search")
n_entries = sum(r["instances"] for t in TRAINED for r in cover[t])
n_trials = sum(r["trials"] for t in SEARCHES for r in cover[t])
print(f"results store: {n_entries} stored instances, {n_trials} search trials")
shown = table.reset_index(drop=True)[["statement", "chapter", "verdict", "evidence", "coverage"]]
shown["chapter"] = shown["chapter"].map(statements.link)  # to its full-statistics section
with pd.option_context("display.max_colwidth", None):
    display(statements.styled(shown))  # noqa: F821

# %% [markdown]
# ## The sampler and the second talk
#
# The worm sampler's validation (chapter 03) and the statements of the second talk, each
# judged by the chapter that tests it at the `paper` profile. The verdicts are computed in
# the chapter's cells ({func}`qftml.verdicts.record`) and stored with the run's provenance by
# `python -m qftml results pages`, keyed by the chapter's code, its parameters, the package
# modules it imports and the library versions ({mod}`qftml.verdicts`); the criteria are
# stated in the chapters and in {ref}`deviations`. A chapter whose stored run is missing or
# no longer matches today's code says so instead of a verdict. The chapters themselves, in
# this book, run at the page's profile.

# %%
second = verdicts.table(P["pages"])
second["chapter"] = second["chapter"].map(statements.link)
with pd.option_context("display.max_colwidth", None):
    display(statements.styled(second))  # noqa: F821

# %% [markdown]
# What the store covers (`python -m qftml results summary --json`): the trained instances,
# and the architecture searches (`n_train` "all": the whole training set).

# %%
display(  # noqa: F821
    pd.DataFrame(
        [{"task": task, **row} for task in TRAINED for row in cover[task]],
        columns=["task", "model", "family", "phase", "n_train", "augment", "instances"],
    )
    .astype(object)
    .fillna("")
)  # model: task 3 only (three winners per family); phase: task 1 trained on one phase only
pd.DataFrame(
    [{"search": task, **row, "n_train": row["n_train"] or "all"}
     for task in SEARCHES for row in cover[task]],
    columns=["search", "family", "n_train", "trials", "planned"],
)  # fmt: skip
