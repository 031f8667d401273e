"""Quality gates: a build's eval next to the unpruned model's, per gate of the recipe."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from emo_prune.eval.results import ModelEval, compare
from emo_prune.pipeline.recipe import Gate


@dataclass(frozen=True)
class GateResult:
    build: str
    task: str
    metric: str
    higher_is_better: bool
    value: float
    baseline: float
    drop: float
    retained: float
    max_drop: float | None
    min_retained: float | None
    passed: bool

    @property
    def reason(self) -> str:
        """One line saying what failed (or held)."""
        arrow = "↑" if self.higher_is_better else "↓"
        parts = []
        if self.max_drop is not None:
            ok = self.drop <= self.max_drop
            parts.append(f"drop {self.drop:.4g} {'<=' if ok else '>'} max_drop {self.max_drop:g}")
        if self.min_retained is not None:
            ok = self.retained >= self.min_retained
            parts.append(f"retained {self.retained:.2%} {'>=' if ok else '<'} min_retained {self.min_retained:.2%}")
        return f"{self.build}: {self.task} {self.metric} {arrow} {self.value:.4g} vs original {self.baseline:.4g}: " + ", ".join(
            parts
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reason": self.reason}


def check_gate(build: str, gate: Gate, model: ModelEval, baseline: ModelEval) -> GateResult:
    row = compare(model.subset([gate.task]), baseline, metrics={gate.task: gate.metric} if gate.metric else None)[0]
    passed = (gate.max_drop is None or row.drop <= gate.max_drop) and (
        gate.min_retained is None or row.retained >= gate.min_retained
    )
    return GateResult(
        build=build,
        task=gate.task,
        metric=row.metric,
        higher_is_better=row.higher_is_better,
        value=row.value,
        baseline=row.baseline,
        drop=row.drop,
        retained=row.retained,
        max_drop=gate.max_drop,
        min_retained=gate.min_retained,
        passed=passed,
    )
