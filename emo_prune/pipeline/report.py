"""What `emo-prune run` leaves next to the builds: report.json and report.md, and the gate verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emo_prune.common.table import BAD, GOOD, RIGHT, Cell, Column, ReportTable
from emo_prune.common.text import inert, plural
from emo_prune.errors import GateFailure
from emo_prune.eval.compare import MetricDelta
from emo_prune.eval.results import ModelEval, comparison_table, scores_table
from emo_prune.io.artifact import ReportKind
from emo_prune.pipeline.edge import EdgeReport, edge_rows
from emo_prune.pipeline.gates import GateResult
from emo_prune.pipeline.recipe import Recipe
from emo_prune.pipeline.steps import StepResult
from emo_prune.version import __version__

#: OUT/report.json (+ report.md) of `emo-prune run`: every run report holds these keys (RunReport.to_dict)
RUN_REPORT = ReportKind(frozenset({"recipe", "tool_version", "builds"}), "emo-prune run results")


@dataclass
class BuildReport:
    budget: float | int
    label: str
    folder: Path
    plan: Path
    kept_counts: list[int | None]
    verify: dict[str, Any] | None = None
    eval: ModelEval | None = None
    comparison: list[MetricDelta] = field(default_factory=list)
    gates: list[GateResult] = field(default_factory=list)
    edge: list[EdgeReport] = field(default_factory=list)
    finetuned: Path | None = None  # the build after the recipe's finetune step
    finetuned_eval: ModelEval | None = None
    finetuned_comparison: list[MetricDelta] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "label": self.label,
            "folder": str(self.folder),
            "plan": str(self.plan),
            "kept_counts": self.kept_counts,
            "verify": self.verify,
            "eval": self.eval.to_dict() if self.eval else None,
            "comparison": [row.to_dict() for row in self.comparison],
            "gates": [g.to_dict() for g in self.gates],
            "edge": [e.to_dict() for e in self.edge],
            "finetuned": None if self.finetuned is None else str(self.finetuned),
            "finetuned_eval": self.finetuned_eval.to_dict() if self.finetuned_eval else None,
            "finetuned_comparison": [row.to_dict() for row in self.finetuned_comparison],
        }


@dataclass
class RunReport:
    recipe: Recipe
    recipe_file: str | None
    out_dir: Path
    model_dir: Path
    model: dict[str, Any]  # identity of the unpruned model
    steps: list[StepResult]
    builds: list[BuildReport]
    baseline: ModelEval | None = None

    @property
    def gates(self) -> list[GateResult]:
        return [g for b in self.builds for g in b.gates]

    @property
    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    @property
    def passed(self) -> bool:
        return not self.failed

    def check_gates(self) -> None:
        """GateFailure with one line per failed gate."""
        if self.failed:
            lines = [g.reason for g in self.failed]
            raise GateFailure(f"{len(lines)} of {plural(len(self.gates), 'gate')} failed:\n  " + "\n  ".join(lines))

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.name,
            "recipe_file": self.recipe_file,
            "tool_version": __version__,
            "out_dir": str(self.out_dir),
            "model_dir": str(self.model_dir),
            "model": self.model,
            "passed": self.passed,
            "failed_gates": [g.reason for g in self.failed],
            "steps": [s.to_dict() for s in self.steps],
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "builds": [b.to_dict() for b in self.builds],
        }

    def builds_table(self) -> ReportTable:
        """One row per build: its budget, experts kept per layer, verify's max diff, its gates held."""
        rows = []
        for b in self.builds:
            kept = ", ".join(str(c) for c in sorted({c for c in b.kept_counts if c is not None}))
            diff = "-" if b.verify is None else f"{b.verify['max_abs_diff']:.2e}"
            held = sum(g.passed for g in b.gates)
            gates = Cell(f"{held}/{len(b.gates)} hold", GOOD if held == len(b.gates) else BAD) if b.gates else "-"
            rows.append((b.folder.name, b.label, kept, diff, gates))
        columns = (Column("build"), Column("budget"), *(Column(h, RIGHT) for h in ("experts/layer", "verify max diff", "gates")))
        return ReportTable(f"{self.recipe.name}: builds in {self.out_dir / 'builds'}", columns, tuple(rows))

    def comparisons(self) -> list[tuple[str, ReportTable]]:
        """(heading, table) per evaluated build, and per fine-tuned build: its scores next to the
        original's, each task with the verdict of the gates that judged that model."""
        tables = []
        for b in self.builds:
            if b.comparison:
                tables.append((b.folder.name, self._comparison(b.folder.name, b.comparison, b.gates)))
            if b.finetuned is not None and b.finetuned_comparison:
                table = self._comparison(b.finetuned.name, b.finetuned_comparison, b.gates, " (fine-tuned)")
                tables.append((f"{b.finetuned.name} (fine-tuned)", table))
        return tables

    @staticmethod
    def _comparison(name: str, rows: list[MetricDelta], gates: list[GateResult], what: str = "") -> ReportTable:
        verdicts: dict[str, bool] = {}
        for g in gates:
            if g.build == name:  # a fine-tuned or edge file's gate judges that model, not the build
                verdicts[g.task] = verdicts.get(g.task, True) and g.passed
        return comparison_table(rows, title=f"{name}{what} vs original", verdicts=verdicts)

    def edge_table(self) -> ReportTable | None:
        """The GGUF files of every build (None when the recipe exports none): size, scores in llama.cpp."""
        rows = [row for b in self.builds for row in edge_rows(b.folder.name, _folder_bytes(b.folder), b.edge)]
        if not rows:
            return None
        columns = (Column("build"), Column("file"), Column("dtype"), Column("size (vs build)", RIGHT))
        columns += (Column("in llama.cpp (safetensors build)"),)
        return ReportTable("edge files, scored in llama.cpp (safetensors build in parentheses)", columns, tuple(rows))

    def gates_table(self) -> ReportTable:
        """Every gate with its reason (report.md; the terminal shows the verdicts in the tables above)."""
        rows = tuple(("pass" if g.passed else "**FAIL**", g.reason) for g in self.gates)
        return ReportTable("gates", (Column(""), Column("gate")), rows)

    def markdown(self) -> str:
        """report.md: the run's facts, then its tables (those the terminal shows, the original model's
        scores and the gates), each under its heading."""
        r = self.recipe
        verdict = "all gates hold" if self.passed else f"{plural(len(self.failed), 'gate')} failed"
        facts = [
            f"- model: `{self.model_dir}` (shards sha256 {str(self.model.get('digest'))[:12]})",
            f"- calibration: {', '.join(r.calibration.sources)}; selection: {r.selection.method}, "
            f"{r.selection.budget} budget, domains {', '.join(r.selection_domains) or 'all'}",
            f"- emo-prune {__version__}; verdict: **{verdict}**",
        ]
        blocks = [f"# {r.name}: pruned builds of {r.model}", r.description.strip(), "\n".join(facts)]
        blocks.append(self.builds_table().to_markdown())
        if self.baseline is not None:
            blocks += ["## Original model", scores_table(self.baseline).to_markdown()]
        for heading, table in self.comparisons():
            blocks += [f"## {heading}", table.to_markdown()]
        edge = self.edge_table()
        if edge is not None:
            blocks += ["## Edge files (scored in llama.cpp)", edge.to_markdown()]
        if self.gates:
            blocks += ["## Gates", self.gates_table().to_markdown()]
        text = "\n\n".join(block.strip("\n") for block in blocks if block) + "\n"
        # names and paths from the recipe and the run folder: no control characters in the file
        return inert(text, markup=False, keep="\n")

    def write(self) -> tuple[Path, Path]:
        """OUT/report.json and OUT/report.md; a rerun replaces the run folder's own report."""
        return RUN_REPORT.write(self.out_dir / "report.json", self.to_dict(), self.markdown(), overwrite=True)


def _folder_bytes(folder: Path) -> int:
    """Bytes of a build's safetensors shards (what the GGUF files are compared with)."""
    return sum(p.stat().st_size for p in folder.glob("*.safetensors")) if folder.is_dir() else 0
