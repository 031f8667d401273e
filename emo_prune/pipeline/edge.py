"""The recipe's `edge` step: GGUF files next to each build, each scored in llama.cpp.

    OUT/builds/<build>-<dtype>.gguf     exported from the build (emo_prune.export), streamed, atomic
    OUT/eval/<build>-<dtype>.json       eval.tasks measured IN llama.cpp (llama-cpp-python)
Each file is a resumable step keyed on the build's digest and the edge section; its eval on the file's
digest and the eval section. The report shows each file's size and score next to the safetensors build's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emo_prune.common.units import megabytes
from emo_prune.eval.compare import MetricDelta
from emo_prune.eval.results import ModelEval, compare
from emo_prune.io.atomic import atomic_write_text
from emo_prune.io.paths import contained_path
from emo_prune.pipeline.recipe import Recipe
from emo_prune.pipeline.steps import Steps, output_digest, step_key, step_progress


@dataclass
class EdgeReport:
    dtype: str
    file: Path
    bytes: int
    eval: ModelEval | None = None
    comparison: list[MetricDelta] = field(default_factory=list)  # vs the unpruned safetensors model
    build_comparison: list[MetricDelta] = field(default_factory=list)  # vs its own safetensors build

    def to_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "file": str(self.file),
            "bytes": self.bytes,
            "eval": self.eval.to_dict() if self.eval else None,
            "comparison": [row.to_dict() for row in self.comparison],
            "vs_build": [row.to_dict() for row in self.build_comparison],
        }


def edge_file(root: Path, build_name: str, dtype: str) -> Path:
    return contained_path(root, f"builds/{build_name}-{dtype}.gguf", "edge file (recipe output.pattern)")


def run_edge(
    recipe: Recipe,
    steps: Steps,
    root: Path,
    build: Path,
    build_digest: str | None,
    settings: Any,  # EvalSettings | None
    baseline: ModelEval | None,
    build_eval: ModelEval | None,
) -> list[EdgeReport]:
    from emo_prune.export.writer import export_gguf

    edge = recipe.edge
    assert edge is not None
    reports = []
    for dtype in edge.dtypes:
        path = edge_file(root, build.name, dtype)

        def export(path: Path = path, dtype: str = dtype) -> None:
            with step_progress(f"export {path.name}"):
                export_gguf(build, path, dtype=dtype, overwrite=True, threads=edge.threads)

        key = step_key("export", build=build_digest, edge=recipe.section_digest("edge"), dtype=dtype)
        steps.run(f"export/{path.name}", key, path, export)
        report = EdgeReport(dtype=dtype, file=path, bytes=path.stat().st_size)
        if settings is not None and edge.eval:
            result = root / "eval" / f"{path.stem}.json"
            key = step_key(
                "eval-gguf", file=output_digest(path), eval=recipe.section_digest("eval"), edge=recipe.section_digest("edge")
            )
            steps.run(
                f"eval/{path.name}",
                key,
                result,
                lambda path=path, result=result: _eval_file(settings, path, build, result, edge.threads),
            )
            report.eval = ModelEval.from_dict(json.loads(result.read_text()))
            if baseline is not None:
                report.comparison = compare(report.eval, baseline)
            if build_eval is not None:
                report.build_comparison = compare(report.eval, build_eval)
        reports.append(report)
    return reports


def _eval_file(settings: Any, path: Path, build: Path, result: Path, threads: int | None) -> None:
    from emo_prune.eval.llamacpp_lm import evaluate_gguf

    with step_progress(f"eval {path.name} in llama.cpp"):
        scores = evaluate_gguf(path, build, settings, label=path.name, threads=threads)
    atomic_write_text(result, json.dumps(scores.to_dict(), indent=2) + "\n")


def edge_rows(build_name: str, build_bytes: int, reports: list[EdgeReport]) -> list[tuple[str, ...]]:
    """Rows of the report's edge table: size, and each metric in llama.cpp next to the safetensors build's."""
    rows = []
    for r in reports:
        scores = (
            "; ".join(f"{row.task} {row.metric} {row.value:.4g} (build {row.baseline:.4g})" for row in r.build_comparison) or "-"
        )
        ratio = f"{r.bytes / build_bytes:.2f}x" if build_bytes else "-"
        rows.append((build_name, r.file.name, r.dtype, f"{megabytes(r.bytes)} ({ratio})", scores))
    return rows
