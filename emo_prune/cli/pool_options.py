"""Options of pool mode and of the coverage guard, shared by `generate` and `eval` (Typer `Annotated` style)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from emo_prune.serve.settings import DEFAULTS, PoolSettings

PoolOption = Annotated[
    str | None,
    typer.Option(
        "--pool",
        help="Per-request expert pools: experts per layer chosen from each request's context, as a fraction "
        "(0.125) or a count, shared experts included (as --keep). Experts are read from disk on demand.",
    ),
]
ReselectOption = Annotated[
    int | None, typer.Option("--reselect-every", help="Re-choose the pools every N generated tokens (default: fixed).")
]
DraftOption = Annotated[
    int,
    typer.Option(
        "--draft",
        help="Re-choose the pools from the context plus a greedy draft of N tokens (0: off); with --pool-index, from "
        "the neighbours' mass plus the draft's.",
    ),
]
CacheBudgetOption = Annotated[
    str | None, typer.Option("--cache-budget", help="Byte budget of the shared expert cache, e.g. 64MB (default: unbounded).")
]
CachePolicyOption = Annotated[str, typer.Option("--cache-policy", help="Expert cache eviction: lru or lfu.")]
DraftRoundsOption = Annotated[
    int, typer.Option("--draft-rounds", min=1, help="Drafts in a row, each within the pools the previous one chose.")
]
PoolPowerOption = Annotated[
    float,
    typer.Option(
        "--pool-power",
        help="Choose pools by the sum of p^a over the context (1: EMO's rule, summed probabilities; 2: "
        "tokens that commit to an expert weigh more, better on math with --draft).",
    ),
]
PoolIndexOption = Annotated[
    str | None,
    typer.Option(
        "--pool-index",
        help="A pool index (`emo-prune pool-index`): each request's pools are the experts its nearest indexed "
        "documents routed to (their whole text by default; their answers with `pool-index --mass-of answer`), "
        "looked up by how its context routes.",
    ),
]
PoolNeighboursOption = Annotated[
    int, typer.Option("--pool-neighbours", min=1, help="With --pool-index: indexed requests averaged.")
]
IndexWeightOption = Annotated[
    float,
    typer.Option(
        "--index-weight", help="With --pool-index and --draft: the neighbours' mass weighs this many times the draft's."
    ),
]
CoverageWarnOption = Annotated[
    float | None,
    typer.Option(
        "--coverage-warn",
        min=0.0,
        help="Warn when a build's coverage of a request (the full router's mass on its experts) is below this "
        "fraction of the coverage its own calibration text reaches (default 0.85).",
    ),
]


@dataclass(frozen=True)
class PoolFlags:
    """Pool mode and the coverage guard, shared by `generate` and `eval` (an option group: cli/option_groups.py).
    The names and defaults are PoolSettings' own (no --pool: no pool mode); `settings()` builds it."""

    pool: PoolOption = None
    reselect_every: ReselectOption = DEFAULTS.reselect_every
    draft: DraftOption = DEFAULTS.draft
    draft_rounds: DraftRoundsOption = DEFAULTS.draft_rounds
    pool_power: PoolPowerOption = DEFAULTS.pool_power
    pool_index: PoolIndexOption = DEFAULTS.pool_index
    pool_neighbours: PoolNeighboursOption = DEFAULTS.pool_neighbours
    index_weight: IndexWeightOption = DEFAULTS.index_weight
    cache_budget: CacheBudgetOption = DEFAULTS.cache_budget
    cache_policy: CachePolicyOption = DEFAULTS.cache_policy
    coverage_warn: CoverageWarnOption = None  # the coverage guard of whole builds: not a pool option

    def settings(self) -> PoolSettings | None:
        """The one place the CLI builds PoolSettings; None without --pool."""
        return PoolSettings.of(self)
