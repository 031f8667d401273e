"""Scores of a pruned model next to its original: delta, drop and retained fraction, direction-aware.

The rule, for one metric with value p (pruned) and b (baseline, the unpruned model):
  delta    = p - b                                   (raw, signed, in the metric's units)
  drop     = b - p  if higher is better (acc)        (> 0 means the pruned model is worse)
           = p - b  if lower is better (perplexity, bits_per_byte)
  retained = p / b  if higher is better
           = b / p  if lower is better               (1.0 = as good as the original; > 1 = better)
A zero or negative denominator gives retained = 1.0 when the pruned model is at least as good,
else 0.0. Gates compare `drop` to `max_drop` and `retained` to `min_retained`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class MetricDelta:
    """One metric of a pruned model and of its baseline; delta, drop and retained follow the rule above."""

    task: str
    metric: str
    higher_is_better: bool
    value: float  # pruned
    baseline: float
    stderr: float | None = None
    baseline_stderr: float | None = None

    @property
    def delta(self) -> float:
        return self.value - self.baseline

    @property
    def drop(self) -> float:
        return drop(self.value, self.baseline, self.higher_is_better)

    @property
    def retained(self) -> float:
        return retained(self.value, self.baseline, self.higher_is_better)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta, "drop": self.drop, "retained": self.retained}


def drop(value: float, baseline: float, higher_is_better: bool) -> float:
    return baseline - value if higher_is_better else value - baseline


def retained(value: float, baseline: float, higher_is_better: bool) -> float:
    num, den = (value, baseline) if higher_is_better else (baseline, value)
    if den <= 0:
        return 1.0 if drop(value, baseline, higher_is_better) <= 0 else 0.0
    return num / den


compare_metric = MetricDelta  # (task, metric, higher_is_better, value, baseline, stderr, baseline_stderr)
