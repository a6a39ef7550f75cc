"""What the architecture searches favoured: the source's statement on the size of optuna's
winners, judged on stored studies of any task (:mod:`qftml.search_store`).

:cite:p:`Favoni:2021talk` sums up its searches with "Optuna favoured architectures with
< 10^5 parameters". :func:`size_verdict` compares the best trials of each family with that
bound, counts the larger networks the search trained (in the sampler's random start and among
its guided proposals), measures how much of each family's space lies above the bound
(:func:`space_share`), and gives the probability that the best trials would all be small if
size did not matter. The task modules re-export these (:mod:`qftml.tasks.regression` for
chapter 06, :mod:`qftml.tasks.detection` for chapter 09-task2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import training

__all__ = ["PARAMETER_BOUND", "SizeVerdict", "size_verdict", "space_share"]

#: The source's bound on the size of the architectures optuna favoured ("< 10^5 parameters").
PARAMETER_BOUND = 100_000


@dataclass
class SizeVerdict:
    """Whether a search favoured networks below ``bound`` parameters (:func:`size_verdict`)."""

    best: object  # DataFrame (family, rank): val loss, parameters, spec of the top trials
    bound: int
    large_random: tuple[int, int]  # (>= bound, trained) among the sampler's random start
    large_guided: tuple[int, int]  # (>= bound, trained) among the trials TPE proposed
    p_value: float  # P(every best trial below the bound | size unrelated to the loss)
    space: dict  # family -> share of the search space at or above the bound (random draws)

    @property
    def largest(self) -> int:
        """The parameter count of the largest of the best trials."""
        return int(self.best["parameters"].max())

    @property
    def confirmed(self) -> bool:
        """Every best trial is below the bound, and the search did train larger networks
        (else the statement would hold by the search space alone)."""
        return self.largest < self.bound and self.large_random[0] + self.large_guided[0] > 0

    def line(self) -> str:
        n_best = len(self.best)
        below = int((self.best["parameters"] < self.bound).sum())
        (lr, nr), (lg, ng) = self.large_random, self.large_guided
        space = ", ".join(f"{f} {q:.1%}" for f, q in self.space.items())
        return (
            f"{below} of the {n_best} best trials have < {self.bound:.0e} parameters (largest "
            f"{self.largest}); trained networks with more: {lr} of {nr} random proposals, "
            f"{lg} of {ng} TPE proposals (share of the search space: {space}); "
            f"P(all best below | size irrelevant) = {self.p_value:.2g}"
        )


def space_share(family: str, task, bound: int = PARAMETER_BOUND, n: int = 1000,
                seed: int = 0) -> float:  # fmt: skip
    """The share of ``family``'s search space (:func:`qftml.search.suggest_spec` for
    ``task``) at or above ``bound`` parameters: ``n`` draws of optuna's random sampler
    (seeded), invalid proposals skipped."""
    import optuna

    from .. import nets, search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    large = valid = 0
    for _ in range(n):
        trial = study.ask()
        try:
            spec = search.suggest_spec(trial, family, task)
        except search.InvalidSpec:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        study.tell(trial, 0.0)
        large += nets.spec_params(spec) >= bound
        valid += 1
    if not valid:
        raise ValueError(f"no valid {family} architecture in {n} draws for {task}")
    return large / valid


def size_verdict(studies: dict, top_k: int, bound: int = PARAMETER_BOUND,
                 startup: int = 10, n_space: int = 1000) -> SizeVerdict:  # fmt: skip
    """The source's "optuna favoured architectures with < 10^5 parameters" on ``studies``
    (``{family: optuna.Study}``): the ``top_k`` best completed trials of each family
    against ``bound``, the share of trained networks at or above it among the first
    ``startup`` trials (TPE's random start, optuna's default 10) and the later, guided ones,
    the share of each family's space above the bound (:func:`space_share`, ``n_space``
    draws, on the task the study records), and the chance that all best trials fall below
    the bound if size did not matter: the hypergeometric probability of drawing only small
    networks, per family,

        P = prod_f C(s_f, k_f) / C(n_f, k_f),

    with ``n_f`` trained architectures (completed or pruned: the pruner ranks a pruned one
    below the median) of which ``s_f`` are small and ``k_f`` the best."""
    import pandas as pd
    from optuna.trial import TrialState

    from .. import search

    rows, p_value, space = [], 1.0, {}
    random_, guided = [0, 0], [0, 0]
    for fam, st in studies.items():
        task = training.Task(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in st.user_attrs["task"].items()})  # fmt: skip
        space[fam] = space_share(fam, task, bound, n_space)
        sizes = {}
        for t in st.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if "n_params" not in t.user_attrs:  # an invalid proposal: never trained
                continue
            counts = random_ if t.number < startup else guided
            counts[0] += t.user_attrs["n_params"] >= bound
            counts[1] += 1
            sizes[t.user_attrs["spec"]] = t.user_attrs["n_params"]
        best = search.top_specs(st, top_k)
        for rank, (spec, value) in enumerate(best, 1):
            rows.append({"family": fam, "rank": rank, "val loss": value,
                         "parameters": sizes[spec], "spec": spec})  # fmt: skip
        small = sum(n < bound for n in sizes.values())
        p_value *= math.comb(small, len(best)) / math.comb(len(sizes), len(best))
    if not rows:
        raise ValueError("the studies have no completed trial")
    table = pd.DataFrame(rows).set_index(["family", "rank"])
    return SizeVerdict(table, int(bound), tuple(random_), tuple(guided), float(p_value), space)
