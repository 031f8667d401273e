"""The per-request pool options, declared once: their names, defaults and checks (torch-free: the CLI's
option group takes its defaults from here before any command imports torch).

`generate`, `eval` (EvalSettings holds one), the lm-eval model type `emo-prune-pool` (its model_args,
text) and Python callers all build this one object; `None` in its place means no pool mode.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from emo_prune.errors import PlanError

if TYPE_CHECKING:
    import torch

DEFAULT_NEIGHBOURS = 8  # index entries averaged per request (examples/experiments/pool_index_scaling.py)


@dataclass(frozen=True)
class PoolSettings:
    pool: str = "0.25"  # experts per layer, fixed ones included: a fraction (0.125) or a count (4), as --keep
    reselect_every: int | None = None  # re-choose the pools every N decoded tokens; None: fixed pools
    draft: int = 0  # D > 0: re-choose the pools from the context plus a D-token greedy draft
    draft_rounds: int = 1  # drafts in a row, each decoded within the pools the previous one chose
    pool_power: float = 1.0  # pools by sum of p^a over the tokens; 1: EMO's rule (selection.py)
    pool_index: str | None = None  # a pool index file: pools from the router mass of the K nearest indexed requests
    pool_neighbours: int = DEFAULT_NEIGHBOURS  # K
    index_weight: float = 10.0  # with pool_index and draft: the neighbours' mass weighs this x the draft's (pool_tuning.py)
    cache_budget: str | int | None = None  # byte budget of the shared expert cache ("64MB"); None: unbounded
    cache_policy: str = "lru"

    @classmethod
    def of(cls, options: Any) -> PoolSettings | None:
        """The settings that `options` (the CLI's PoolFlags: any object with these attribute names) name;
        None when its `pool` is None (no pool mode)."""
        if options.pool is None:
            if getattr(options, "pool_index", None) is not None:
                raise PlanError(
                    "--pool-index says how to choose the pools; give their size too: --pool 0.125 (or 0.25, or a count)"
                )
            return None
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls)})

    @classmethod
    def from_text(cls, **args: Any) -> PoolSettings:
        """The settings of lm-eval's model_args (`--model_args pool=0.125,draft=32`): values arrive as text,
        absent or empty ones take the defaults."""
        given = {name: value for name, value in args.items() if value not in (None, "")}
        unknown = sorted(set(given) - {f.name for f in fields(cls)})
        if unknown:
            raise PlanError(f"unknown pool model_args: {', '.join(unknown)} (known: {', '.join(f.name for f in fields(cls))})")
        parse = {
            "reselect_every": int,
            "draft": int,
            "draft_rounds": int,
            "pool_power": float,
            "pool_neighbours": int,
            "index_weight": float,
        }
        try:
            values = {name: parse.get(name, str)(value) if name != "cache_budget" else value for name, value in given.items()}
        except ValueError as exc:
            raise PlanError(f"pool model_args: {exc}") from None
        return cls(**values)

    def __post_init__(self) -> None:
        if self.draft < 0:
            raise PlanError(f"--draft must be >= 0 (got {self.draft})")
        if self.draft_rounds < 1:
            raise PlanError(f"draft_rounds must be >= 1 (got {self.draft_rounds})")
        if self.reselect_every is not None and self.reselect_every < 1:
            raise PlanError(f"--reselect-every must be >= 1 (got {self.reselect_every})")
        if not self.pool_power > 0:
            raise PlanError(f"--pool-power must be > 0 (got {self.pool_power})")
        if self.pool_neighbours < 1:
            raise PlanError(f"--pool-neighbours must be >= 1 (got {self.pool_neighbours})")
        if self.pool_index is not None and self.reselect_every is not None:
            raise PlanError(
                "--pool-index fixes the pools from its calibration neighbours (and --draft); --reselect-every re-chooses "
                "them from the tokens fed; use one or the other"
            )
        if not self.index_weight > 0:
            raise PlanError(f"--index-weight must be > 0 (got {self.index_weight})")


DEFAULTS = PoolSettings()


def compute_dtype(name: str) -> torch.dtype:
    """The dtype pool mode and `generate` compute in, from a `--dtype` name: `auto` is float32 here,
    whatever the checkpoint's own dtype is (bf16 on the bundled models), as these commands have always done."""
    from emo_prune.models.loading import resolve_dtype

    return resolve_dtype("float32" if name == "auto" else name, {})
