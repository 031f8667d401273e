"""Evaluation results as data: per-task metrics of one model, and a model next to its baseline.

A metric key is lm-eval's "metric,filter" with the default filter dropped ("acc", "bits_per_byte",
"exact_match,strict-match"). A task's primary metric is the first one its config lists (lm-eval keeps
that order); the offline tasks list the metric to judge them by first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from emo_prune.common.table import BAD, GOOD, RIGHT, Cell, Column, ReportTable
from emo_prune.errors import EvalError
from emo_prune.eval.compare import MetricDelta, compare_metric

FORMAT = 1


@dataclass(frozen=True)
class MetricScore:
    value: float
    stderr: float | None  # None where lm-eval gives none (perplexities)
    higher_is_better: bool


@dataclass
class TaskScores:
    task: str
    metrics: dict[str, MetricScore]
    samples: int | None = None
    num_fewshot: int | None = None
    version: Any = None

    @property
    def primary(self) -> str:
        return next(iter(self.metrics))

    def metric(self, name: str | None, model: str = "the model") -> tuple[str, MetricScore]:
        """(name, score) of `name`, or of the primary metric when `name` is None."""
        name = name or self.primary
        if name not in self.metrics:
            raise EvalError(f"task {self.task!r} of {model} has no metric {name!r} (it has: {', '.join(self.metrics)})")
        return name, self.metrics[name]


@dataclass
class ModelEval:
    """One model's scores; `model` is emo_prune.io.model_identity(...) of its folder."""

    model: dict[str, Any]
    settings: dict[str, Any]
    tasks: dict[str, TaskScores] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # tool, lm_eval, transformers, torch
    seconds: float | None = None  # wall time of loading + all tasks
    requests: list[dict[str, Any]] | None = None  # per-request reports of pool mode (emo_prune.serve)
    coverage: dict[str, Any] | None = None  # a static build's per-request coverage (emo_prune.extract.coverage_meter)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def subset(self, tasks: list[str]) -> ModelEval:
        """The same scores, only of `tasks` (EvalError for a task that was not evaluated)."""
        missing = [t for t in tasks if t not in self.tasks]
        if missing:
            raise EvalError(f"{self.model.get('path')} was not evaluated on {', '.join(missing)}")
        return ModelEval(self.model, self.settings, {t: self.tasks[t] for t in tasks}, self.versions, self.seconds)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEval:
        if data.get("format") != FORMAT:
            raise EvalError(f"eval results format {data.get('format')!r} is not {FORMAT}; evaluate again")
        tasks = {
            name: TaskScores(
                **{**t, "metrics": {m: MetricScore(**s) for m, s in t["metrics"].items()}},
            )
            for name, t in data["tasks"].items()
        }
        return cls(
            model=data["model"],
            settings=data["settings"],
            tasks=tasks,
            versions=data.get("versions", {}),
            seconds=data.get("seconds"),
            requests=data.get("requests"),
            coverage=data.get("coverage"),
        )


def compare(model: ModelEval, baseline: ModelEval, metrics: dict[str, str] | None = None) -> list[MetricDelta]:
    """One row per task of `model`: its primary metric (or `metrics[task]`) next to the baseline's."""
    rows = []
    for task, scores in model.tasks.items():
        if task not in baseline.tasks:
            raise EvalError(f"the baseline was not evaluated on task {task!r}; evaluate both on the same tasks")
        name, score = scores.metric((metrics or {}).get(task))
        _, base = baseline.tasks[task].metric(name, "the baseline")
        rows.append(compare_metric(task, name, score.higher_is_better, score.value, base.value, score.stderr, base.stderr))
    return rows


@dataclass
class EvalReport:
    """What `emo-prune eval` writes: the model's scores, and the baseline's with the comparison."""

    model: ModelEval
    baseline: ModelEval | None = None

    @property
    def comparison(self) -> list[MetricDelta]:
        return compare(self.model, self.baseline) if self.baseline else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "versions": self.model.versions,
            "settings": self.model.settings,
            "model": self.model.to_dict(),
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "comparison": [row.to_dict() for row in self.comparison],
        }

    def table(self) -> ReportTable:
        """The one table of the report: the CLI prints it, RESULTS.md is its Markdown."""
        return scores_table(self.model) if self.baseline is None else comparison_table(self.comparison)

    def markdown(self) -> str:
        return self.table().to_markdown()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _plus_minus(value: float, stderr: float | None) -> str:
    return _fmt(value) if stderr is None else f"{_fmt(value)} ± {stderr:.2g}"


def _arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def scores_table(model_eval: ModelEval) -> ReportTable:
    """One row per task x metric: value, stderr and the documents scored (n)."""
    rows = tuple(
        (task, f"{name} {_arrow(s.higher_is_better)}", _fmt(s.value), _fmt(s.stderr), str(scores.samples or "-"))
        for task, scores in model_eval.tasks.items()
        for name, s in scores.metrics.items()
    )
    columns = (Column("task"), Column("metric"), Column("value", RIGHT), Column("stderr", RIGHT), Column("n", RIGHT))
    return ReportTable("scores (↑ higher is better, ↓ lower is better)", columns, rows)


def comparison_table(
    rows: list[MetricDelta], title: str = "pruned vs original (primary metric per task)", verdicts: dict[str, bool] | None = None
) -> ReportTable:
    """One row per task: the original's score, the pruned model's, delta (red where it dropped) and the
    retained fraction; `verdicts` (task -> its gates held) adds a gate column (`eval --baseline`, `run`)."""
    columns = [Column("task"), Column("metric")] + [Column(h, RIGHT) for h in ("original", "pruned", "delta", "retained")]
    if verdicts is not None:
        columns.append(Column("gate"))
    table_rows = []
    for r in rows:
        cells: list[str | Cell] = [
            r.task,
            f"{r.metric} {_arrow(r.higher_is_better)}",
            _plus_minus(r.baseline, r.baseline_stderr),
            _plus_minus(r.value, r.stderr),
            Cell(f"{r.delta:+.4g}", BAD if r.drop > 0 else GOOD),
            f"{r.retained:.1%}",
        ]
        if verdicts is not None:
            held = verdicts.get(r.task)
            cells.append("" if held is None else Cell("pass", GOOD) if held else Cell("FAIL", BAD))
        table_rows.append(tuple(cells))
    return ReportTable(title, tuple(columns), tuple(table_rows))
