"""Running lm-eval on model folders: one model, or a pruned model next to its original.

Both models of a comparison run with identical settings (tasks, shots, limit, batch size, dtype,
experts implementation, device, lm-eval's fixed seeds); the settings are recorded with the scores.
One `simple_evaluate` call per model covers all tasks: each call also collects lm-eval's environment
report (about 1.5 s here), so calling it per task would cost that many times over.
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from emo_prune import events
from emo_prune.common.units import duration
from emo_prune.errors import EvalError
from emo_prune.eval.results import EvalReport, MetricScore, ModelEval, TaskScores
from emo_prune.eval.tasks import quiet_lm_eval, task_manager
from emo_prune.io import Checkpoint, model_identity
from emo_prune.io.artifact import ReportKind
from emo_prune.memory import MemoryOptions
from emo_prune.models.loading import LoadSettings
from emo_prune.serve.settings import DEFAULTS, PoolSettings
from emo_prune.version import __version__

if TYPE_CHECKING:
    from emo_prune.io.lock import FolderLock

# result keys of lm-eval that are not metrics
_NOT_METRICS = {"alias", "name", "sample_len", "samples", " ", "sample_count"}


@dataclass(frozen=True)
class EvalSettings:
    tasks: tuple[str, ...]
    num_fewshot: int | None = None
    limit: int | float | None = None  # per task; a float < 1 is a fraction of the documents
    batch_size: int = 8
    max_length: int | None = None  # context length; None = the model config's
    include_paths: tuple[str, ...] = ()
    impl: str = "auto"
    dtype: str = "auto"
    device: str = "cpu"
    bootstrap_iters: int = 100000  # lm-eval's default; only metrics without a closed-form stderr use it
    memory: str = "auto"  # whole | layerwise (accelerate's disk offload) | auto: by the memory plan
    max_memory: str | None = None  # the memory plan's budget (default: EMO_PRUNE_MAX_MEMORY, else free memory)
    pool: PoolSettings | None = None  # per-request expert pools (emo_prune.serve); None: the model runs whole
    coverage_warn: float | None = None  # warn for requests a static build covers less than this x its calibration coverage (0.85)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise EvalError("no tasks given; pass --tasks T1,T2 (e.g. emo_ppl_code,emo_math_mc)")
        if self.limit is not None and self.limit <= 0:
            raise EvalError(f"--limit must be > 0 (got {self.limit})")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise EvalError(f"--num-fewshot must be >= 0 (got {self.num_fewshot})")
        if self.batch_size < 1:
            raise EvalError(f"--batch-size must be >= 1 (got {self.batch_size})")

    @property
    def load(self) -> LoadSettings:
        return LoadSettings(
            impl=self.impl,
            dtype=self.dtype,
            device=self.device,
            memory=MemoryOptions(self.memory, self.max_memory),
            rows=self.batch_size,
            seq_len=self.max_length,
        )

    def resolved(self) -> EvalSettings:
        """`auto` impl / device replaced by what they resolve to here (recorded with the scores)."""
        load = self.load.resolved()
        return replace(self, impl=load.impl, device=load.device)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, recorded with the scores: the pool options flat, in their place (defaults and
        `pool: None` when the model runs whole)."""
        pool = asdict(self.pool) if self.pool is not None else {**asdict(DEFAULTS), "pool": None}
        flat = {}
        for key, value in asdict(self).items():
            flat.update(pool if key == "pool" else {key: value})
        return {**flat, "tasks": list(self.tasks), "include_paths": list(self.include_paths)}


def versions() -> dict[str, str]:
    import lm_eval
    import torch
    import transformers

    return {
        "emo_prune": __version__,
        "lm_eval": lm_eval.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _in_config_order(metrics: dict[str, MetricScore], listed: list[str]) -> dict[str, MetricScore]:
    """Metrics sorted as the config lists their base names ("exact_match,strict-match" -> exact_match)."""

    def rank(name: str) -> int:
        base = name.partition(",")[0]
        return listed.index(base) if base in listed else len(listed)

    return {name: metrics[name] for name in sorted(metrics, key=rank)}  # stable for unlisted ones


def task_scores(raw: dict[str, Any]) -> dict[str, TaskScores]:
    """lm-eval's `simple_evaluate` output -> TaskScores per task (groups and tag members included).

    Metrics are ordered as the task config lists them (lm-eval's results dict is not, for perplexity
    tasks), so the first one is the primary metric the config author chose.
    """
    from lm_eval.api.registry import is_higher_better

    scores = {}
    for task, entries in raw["results"].items():
        directions = raw.get("higher_is_better", {}).get(task, {})
        metrics = {}
        for key, value in entries.items():
            if key in _NOT_METRICS or "_stderr," in key or _float(value) is None:
                continue
            metric, _, filt = key.partition(",")
            name = metric if filt in ("", "none") else key
            higher = directions.get(metric)
            if higher is None:
                try:
                    higher = is_higher_better(metric)
                except (KeyError, ValueError):
                    higher = True
            stderr = _float(entries.get(f"{metric}_stderr,{filt}"))
            metrics[name] = MetricScore(value=float(value), stderr=stderr, higher_is_better=bool(higher))
        listed = [m.get("metric") for m in raw.get("configs", {}).get(task, {}).get("metric_list") or []]
        metrics = _in_config_order(metrics, listed)
        if metrics:
            scores[task] = TaskScores(
                task=task,
                metrics=metrics,
                samples=raw.get("n-samples", {}).get(task, {}).get("effective"),
                num_fewshot=raw.get("n-shot", {}).get(task),
                version=raw.get("versions", {}).get(task),
            )
    return scores


def run_tasks(lm: Any, manager: Any, settings: EvalSettings) -> dict[str, Any]:
    """lm-eval's scores of `lm` (any lm-eval model: ours, in pools, or llama.cpp's) on `settings.tasks`:
    the part `task_scores` reads, on every rank."""
    import lm_eval

    try:
        with quiet_lm_eval(events.debugging()):
            raw = lm_eval.simple_evaluate(
                model=lm,
                tasks=list(settings.tasks),
                task_manager=manager,
                num_fewshot=settings.num_fewshot,
                limit=settings.limit,
                bootstrap_iters=settings.bootstrap_iters,
                log_samples=False,
            )
    except (ConnectionError, FileNotFoundError) as exc:
        raise EvalError(
            f"a task cannot load its data offline ({exc}); put its dataset in the Hugging Face cache "
            f"first, or use the offline tasks of recipes/tasks"
        ) from exc
    scores = None if raw is None else _scores_part(raw)
    if getattr(lm, "world_size", 1) > 1:  # lm-eval gathered the scores on rank 0: every rank gets them
        from emo_prune.process.distributed import World, broadcast

        scores = broadcast(scores, World(lm.rank, lm.world_size))
    if scores is None or not scores.get("results"):
        raise EvalError(f"tasks {', '.join(settings.tasks)} produced no results (empty split, or --limit too small?)")
    return scores


def _scores_part(raw: dict[str, Any]) -> dict[str, Any]:
    """What `task_scores` reads of lm-eval's output: plain data (task configs hold functions)."""
    part = {k: raw[k] for k in ("results", "higher_is_better", "n-samples", "n-shot", "versions") if k in raw}
    part["configs"] = {
        task: {"metric_list": [{"metric": m.get("metric")} for m in config.get("metric_list") or []]}
        for task, config in raw.get("configs", {}).items()
    }
    return part


def evaluate_model(model_dir: str | Path, settings: EvalSettings, *, label: str | None = None) -> ModelEval:
    """Scores of one model folder on `settings.tasks`: one lm-eval run over all tasks (Rich progress)."""
    from emo_prune.eval.lm import EmoPruneLM

    settings = settings.resolved()
    identity = model_identity(Checkpoint.open(model_dir))
    manager = task_manager(list(settings.tasks), list(settings.include_paths))
    label = label or Path(model_dir).name
    start = time.perf_counter()
    with events.progress() as progress:
        bar = progress.add_task(f"eval {label}: loading", total=None)
        with quiet_lm_eval(events.debugging()):
            lm = (
                _pool_lm(model_dir, settings)
                if settings.pool is not None
                else EmoPruneLM(
                    str(model_dir),
                    load=settings.load,
                    batch_size=settings.batch_size,
                    max_length=settings.max_length,
                )
            )
        if settings.pool is None and hasattr(lm.model, "model") and hasattr(lm.model.model, "layouts"):
            from emo_prune.eval.lm import with_coverage

            lm = with_coverage(lm, model_dir)  # a build with the coverage side file measures each request
        loaded = f"loaded in {duration(time.perf_counter() - start)}"
        progress.update(bar, description=f"eval {label}: {loaded}, scoring")
        lm.on_phase = lambda phase, n: progress.update(bar, description=f"eval {label}: {loaded}, {phase} ({n} requests)")
        try:
            raw = run_tasks(lm, manager, settings)
            requests = getattr(lm, "reports", None)
            coverages, meter = getattr(lm, "coverages", None), getattr(lm, "coverage_meter", None)
            if coverages is not None and lm.world_size > 1:  # each rank measured its own share of the requests
                from emo_prune.process.distributed import World, gather_lists

                coverages = gather_lists(coverages, World(lm.rank, lm.world_size))
        finally:
            del lm  # the baseline (or the next build) loads next: free this model first
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    seconds = round(time.perf_counter() - start, 3)
    return ModelEval(
        model=identity,
        settings=settings.to_dict(),
        tasks=task_scores(raw),
        versions=versions(),
        seconds=seconds,
        requests=requests,
        coverage=_coverage_summary(coverages, meter, settings.coverage_warn),
    )


def _coverage_summary(coverages: list[float] | None, meter: Any, warn: float | None) -> dict[str, Any] | None:
    """Per-request coverage of a static build (emo_prune.extract.coverage_meter), with a warning for the requests
    below `warn` x the build's calibration coverage."""
    if not coverages:
        return None
    below = meter.warn_below(warn)
    low = sum(c < below for c in coverages)
    if low:
        events.warn(
            f"{low} of {len(coverages)} requests put less than {below:.1%} of the full router's mass on the build's experts "
            f"({below / meter.expected:.2f} x the {meter.expected:.1%} of its calibration text): they look outside the domain "
            f"the build was cut for"
        )
    return {
        "mean": sum(coverages) / len(coverages),
        "min": min(coverages),
        "calibration_coverage": meter.expected,
        "warn_below": below,
        "low": low,
        "per_request": coverages,
    }


def _pool_lm(model_dir: str | Path, settings: EvalSettings) -> Any:
    from emo_prune.eval.pool_lm import PoolLM

    return PoolLM(
        str(model_dir), settings=settings.pool, dtype=settings.dtype, device=settings.device, max_length=settings.max_length
    )


def evaluate(model_dir: str | Path, settings: EvalSettings, baseline_dir: str | Path | None = None) -> EvalReport:
    """`emo-prune eval`: the model's scores and, with a baseline, both with identical settings."""
    model = evaluate_model(model_dir, settings, label="model")
    plain = replace(settings, pool=None)  # the baseline runs whole (with --pool: the full model, no pools)
    baseline = evaluate_model(baseline_dir, plain, label="baseline") if baseline_dir is not None else None
    return EvalReport(model=model, baseline=baseline)


#: RESULTS.json (+ RESULTS.md) of `emo-prune eval`: every results file holds these keys (EvalReport.to_dict)
RESULTS = ReportKind(frozenset({"format", "model", "comparison"}), "emo-prune results", EvalError)


def check_out_path(path: str | Path, overwrite: bool = True) -> Path:
    """Refuse a results path before any model is loaded: RESULTS.json and RESULTS.md beside it are
    replaced only when they are emo-prune results, and only with `overwrite`."""
    path = _results_path(path)
    RESULTS.check_output(path, overwrite)
    return path


def write_report(
    report: EvalReport, path: str | Path, overwrite: bool = True, lock: FolderLock | None = None
) -> tuple[Path, Path]:
    """RESULTS.json and RESULTS.md beside it, each written atomically, both under the .json's lock
    (`lock`: that lock, when the caller took it before evaluating)."""
    return RESULTS.write(_results_path(path), report.to_dict(), report.markdown(), overwrite=overwrite, lock=lock)


def _results_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix != ".json":
        raise EvalError(f"--out {path} must end in .json (the Markdown table goes beside it as .md)")
    return path
