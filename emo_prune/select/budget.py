"""How many routed experts each layer keeps: the same count everywhere, or one global budget.

uniform  layer l keeps K_l - f_l routed experts (K_l from --keep, f_l its fixed experts).
global   the same total R = sum_l (K_l - f_l) routed experts, spread by one global ranking: each layer
         first gets the k_l - f_l it needs to route at all (k_l its top-k), then the rest go, one by
         one, to the (layer, next expert) of highest normalized score, where an expert's normalized
         score is its share of its layer's total score (made non-increasing along the layer's
         ranking). A layer whose mass is spread over many experts has many mid-sized shares and so
         gets more experts than a layer where a few experts hold the mass; the allocation maximizes
         the summed per-layer share kept. Every layer keeps a prefix of its own ranking and a
         smaller budget takes a prefix of the same global order, so global subsets are nested too.
"""

from __future__ import annotations

from emo_prune.arch import LayerLayout
from emo_prune.errors import PlanError

BUDGETS = ("uniform", "global")


def routed_counts(
    layouts: list[LayerLayout],
    counts: list[int | None],
    rankings: list[list[int] | None],
    values: list[list[float] | None],
    budget: str,
) -> list[int | None]:
    """Routed experts to keep per layer (None for dense layers)."""
    if budget not in BUDGETS:
        raise PlanError(f"unknown --budget {budget!r} (known: {', '.join(BUDGETS)})")
    wanted: list[int | None] = []
    for lay, count, ranking in zip(layouts, counts, rankings):
        if count is None or ranking is None:
            wanted.append(None)
            continue
        n = count - len(lay.fixed_ids)
        if n > len(ranking):
            raise PlanError(f"layer {lay.index}: {n} routed experts wanted but only {len(ranking)} candidates are allowed")
        wanted.append(n)
    if budget == "uniform":
        return wanted
    return _global(layouts, wanted, rankings, values)


def _global(
    layouts: list[LayerLayout],
    wanted: list[int | None],
    rankings: list[list[int] | None],
    values: list[list[float] | None],
) -> list[int | None]:
    total = sum(n for n in wanted if n is not None)
    minimum = [None if n is None else lay.top_k - len(lay.fixed_ids) for lay, n in zip(layouts, wanted)]
    pool: list[tuple[float, int, int]] = []  # (-normalized score, layer, position)
    for i, (m, ranking, vals) in enumerate(zip(minimum, rankings, values)):
        if m is None or ranking is None or vals is None:
            continue
        layer_total = sum(max(v, 0.0) for v in vals)
        running = float("inf")
        for j, v in enumerate(vals):
            share = max(v, 0.0) / layer_total if layer_total > 0 else 0.0
            running = min(running, share)
            if j >= m:
                pool.append((-running, i, j))
    pool.sort()
    extra = total - sum(m for m in minimum if m is not None)
    allocated = [m for m in minimum]
    for _, i, _ in pool[: max(extra, 0)]:
        allocated[i] += 1  # type: ignore[operator]
    return allocated
