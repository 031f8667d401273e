"""`emo-prune run`: recipe -> profile -> select -> extract -> verify -> [finetune] -> eval -> gates, resumable.

    OUT/ (default runs/<recipe name>/)
      recipe.resolved.yaml        the validated recipe with --set overrides applied, and the tool version
      profile.safetensors         one profile, shared by every budget
      plans/<budget>.json         e.g. plans/25pct.json
      builds/<name>-<budget>/     the pruned checkpoints
      builds/<build>-ft/          with a `finetune` section: each build fine-tuned (evaluated and gated too)
      verify/<build>.json         logits of the build vs the masked original
      eval/baseline.json          the unpruned model's scores (evaluated once)
      eval/<build>.json
      builds/<build>-<dtype>.gguf with the recipe's `edge` section, scored in llama.cpp: eval/<build>-<dtype>.json
      builds/<build>.<format>.json with the recipe's `plans` section: other tools' plan files (vllm, ...)
      report.json, report.md      scores side by side and the gate verdicts
      .steps/                     stamps that make a second run skip finished steps
      .emo-prune-owner.json       marks OUT as a run folder emo-prune made (emo_prune.io.ownership)

Every step calls the public library function of its command (profile, select, extract, verify, eval).
Every write below OUT goes through real folders only (`emo_prune.io.confine`): a `.steps/`, `plans/`
or `verify/` replaced by a symlink between two runs is refused before anything is read or written.
OUT must not be the model folder or lie inside it, must be new, empty or a run folder emo-prune made,
and is locked for the whole run: a second `run` into it fails at once. Build folders come from the
recipe's `output.pattern`, so each is checked to stay inside OUT/builds/.
"""

from __future__ import annotations

import json
from pathlib import Path

from emo_prune import events
from emo_prune.common.units import duration
from emo_prune.errors import OutputError, RuntimeSetupError
from emo_prune.eval.harness import EvalSettings, evaluate_model
from emo_prune.eval.results import ModelEval, compare
from emo_prune.io import Checkpoint, model_identity
from emo_prune.io.atomic import atomic_write_text
from emo_prune.io.confine import confined, real_folder
from emo_prune.io.lock import FolderLock
from emo_prune.io.ownership import claim_folder, write_owner_marker
from emo_prune.io.paths import contained_path
from emo_prune.models.builtin import resolve_model
from emo_prune.pipeline.edge import run_edge
from emo_prune.pipeline.gates import check_gate
from emo_prune.pipeline.recipe import Recipe, budget_label
from emo_prune.pipeline.report import BuildReport, RunReport
from emo_prune.pipeline.steps import STAMPS, StepResult, Steps, output_digest, step_key, step_progress
from emo_prune.select.selector import check_selection, make_plan
from emo_prune.version import __version__

#: the folders a run writes into (the layout above); each must be a real folder of the run's own
RUN_FOLDERS = (STAMPS, "plans", "builds", "verify", "eval")


def default_out_dir(recipe: Recipe) -> Path:
    return Path("runs") / recipe.name


def _status(result: StepResult) -> None:
    verdict = "skipped (up to date)" if result.status == "skipped" else f"done in {duration(result.seconds)}"
    events.note(f"{result.step}: {verdict}")  # notes are plain text (the console makes them inert)


# ---- the steps ------------------------------------------------------------------------------------
# profile, then select per budget: the two halves of emo_prune.select.fresh, each a resumable step
def _profile(recipe: Recipe, model_dir: Path, path: Path) -> None:
    from emo_prune.profile.runner import profile_to_file  # torch

    c = recipe.calibration
    domains = list(c.domains) if c.domains else None
    profile_to_file(model_dir, list(c.sources), path, domains, c.profile_settings(), overwrite=True)


def _select(recipe: Recipe, model_dir: Path, profile: Path, budget: float | int, path: Path) -> None:
    options = recipe.select_options(model_dir, budget)
    with step_progress(f"select {budget_label(budget)}"):  # greedy adds its bar over the layers
        make_plan(model_dir, options, profile).save(path)


def _extract(recipe: Recipe, model_dir: Path, plan_path: Path, build: Path) -> None:
    from emo_prune.extract import extract
    from emo_prune.select import Plan

    with step_progress(f"extract {build.name}"):
        extract(
            model_dir,
            Plan.load(plan_path),
            build,
            max_shard_size=recipe.output.max_shard_size,
            dtype=recipe.output.dtype,
            overwrite=build.exists(),
        )


def _verify(recipe: Recipe, model_dir: Path, build: Path, path: Path) -> None:
    from emo_prune.verify import verify

    with step_progress(f"verify {build.name}"):
        report = verify(model_dir, build, num_prompts=recipe.verify.prompts)
    report.raise_for_failure()
    atomic_write_text(path, json.dumps(report.to_dict(), indent=2) + "\n")


def _finetune(recipe: Recipe, build: Path, tuned: Path) -> None:
    from emo_prune.train.finetune import finetune

    assert recipe.finetune is not None
    settings = recipe.finetune.settings(recipe.output.max_shard_size)
    finetune(build, list(recipe.finetune.sources), tuned, settings, overwrite=tuned.exists())


def _eval(settings: EvalSettings, model_dir: Path, path: Path, label: str) -> None:
    result = evaluate_model(model_dir, settings, label=label)
    atomic_write_text(path, json.dumps(result.to_dict(), indent=2) + "\n")


def _load_eval(path: Path) -> ModelEval:
    return ModelEval.from_dict(json.loads(path.read_text()))


# ---- the run --------------------------------------------------------------------------------------
def run_recipe(
    recipe: Recipe,
    out_dir: str | Path | None = None,
    *,
    recipe_file: str | Path | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    target: str | None = None,
) -> RunReport:
    """Build, verify and evaluate every budget of `recipe` under `out_dir`; finished steps are skipped.

    `target` ("gguf"; implied by an `edge` section) refuses, right after selection, a plan whose build
    that format cannot carry.

    Returns the report (also written as report.json / report.md); `report.check_gates()` raises
    GateFailure when a gate does not hold.
    """
    from emo_prune.export.check import check_target_name
    from emo_prune.models.loading import resolve_device
    from emo_prune.pipeline.precheck import check_recipe_needs

    check_target_name(target)  # an unknown --target fails before anything runs
    for field, device in (("calibration.device", recipe.calibration.device), ("eval.device", recipe.eval.device)):
        try:
            resolve_device(device)  # so does a device this machine lacks
        except RuntimeSetupError as exc:
            raise RuntimeSetupError(f"recipe {field}: {exc}") from None
    root = Path(out_dir) if out_dir is not None else default_out_dir(recipe)
    model_dir = resolve_model(recipe.model)  # a missing model fails before anything is written
    resolved_root, resolved_model = root.resolve(), Path(model_dir).resolve()
    if resolved_root == resolved_model or resolved_model in resolved_root.parents:
        raise OutputError(f"--out {root} is the model folder {model_dir} or lies inside it; choose a folder outside it")
    checkpoint = Checkpoint.open(model_dir)  # headers only: a broken model fails before anything is written
    for budget in recipe.budgets:  # an impossible budget fails before the profile is made
        check_selection(checkpoint.architecture, recipe.select_options(model_dir, budget))
    check_recipe_needs(recipe)  # the edge extra, the tasks' data: refused before the profile is made
    with FolderLock(root):  # before hashing the model: a second run into root fails at once
        claim_folder(root, "run")
        with confined(root):  # every write below root goes through real folders only (io/confine.py)
            for folder in RUN_FOLDERS:  # a resumed run reads stamps there too: refuse a planted symlink now
                real_folder(root / folder, root, create=False)
            identity = model_identity(checkpoint)
            run = _run_steps(recipe, root, model_dir, identity, recipe_file, overrides, target)
        write_owner_marker(root, "run")  # now listing what this run folder holds
    return run


def _run_steps(
    recipe: Recipe,
    root: Path,
    model_dir: Path,
    identity: dict,
    recipe_file: str | Path | None,
    overrides: tuple[str, ...] | list[str],
    target: str | None = None,
) -> RunReport:
    from emo_prune.export.check import check_target

    if target is None and recipe.edge is not None:
        target = "gguf"
    settings = recipe.eval.settings() if recipe.eval.tasks else None
    header = f"resolved by emo-prune {__version__} from {recipe_file or 'a Recipe object'}"
    if overrides:
        header += "\noverrides: " + " ".join(overrides)
    atomic_write_text(root / "recipe.resolved.yaml", recipe.to_yaml(header))
    steps = Steps(root, on_status=_status)

    profile = root / "profile.safetensors"
    steps.run(
        "profile",
        step_key("profile", model=identity["digest"], calibration=recipe.section_digest("calibration")),
        profile,
        lambda: _profile(recipe, model_dir, profile),
    )
    profile_digest = output_digest(profile)

    baseline = None
    if settings is not None:
        path = root / "eval" / "baseline.json"
        key = step_key("eval", model=identity["digest"], eval=recipe.section_digest("eval"))
        steps.run("eval/baseline", key, path, lambda: _eval(settings, model_dir, path, "original"))
        baseline = _load_eval(path)

    builds = []
    for budget in recipe.budgets:
        label = budget_label(budget)
        name = recipe.build_folder(budget)
        plan = root / "plans" / f"{label}.json"
        build = contained_path(root, f"builds/{name}", "build folder (recipe output.name / output.pattern)")
        selection = recipe.section_digest("selection")
        key = step_key("select", profile=profile_digest, model=identity["digest"], selection=selection, budget=label)
        steps.run(f"select/{label}", key, plan, lambda: _select(recipe, model_dir, profile, budget, plan))
        check_target(target, Checkpoint.open(model_dir).config, _kept_counts(plan))

        output = recipe.section_digest("output")
        key = step_key("extract", plan=output_digest(plan), model=identity["digest"], output=output)
        steps.run(f"extract/{name}", key, build, lambda: _extract(recipe, model_dir, plan, build))
        build_digest = output_digest(build)
        if recipe.plans is not None:
            _plan_files(recipe, steps, root, model_dir, profile, plan, name, budget)

        report = BuildReport(budget=budget, label=label, folder=build, plan=plan, kept_counts=_kept_counts(build))
        if recipe.verify.enabled:
            path = root / "verify" / f"{name}.json"
            key = step_key("verify", build=build_digest, model=identity["digest"], verify=recipe.section_digest("verify"))
            steps.run(f"verify/{name}", key, path, lambda: _verify(recipe, model_dir, build, path))
            report.verify = json.loads(path.read_text())
        final, final_digest = build, build_digest  # what the edge step exports and finetuned gates judge
        if recipe.finetune is not None:
            tuned = contained_path(root, f"builds/{name}-ft", "fine-tuned build folder")
            key = step_key("finetune", build=build_digest, finetune=recipe.section_digest("finetune"), output=output)
            steps.run(f"finetune/{name}", key, tuned, lambda: _finetune(recipe, build, tuned))
            final, final_digest = tuned, output_digest(tuned)
            report.finetuned = tuned
        if settings is not None and baseline is not None:
            path = root / "eval" / f"{name}.json"
            key = step_key("eval", model=build_digest, eval=recipe.section_digest("eval"))
            steps.run(f"eval/{name}", key, path, lambda: _eval(settings, build, path, name))
            report.eval = _load_eval(path)
            report.comparison = compare(report.eval, baseline)
            if report.finetuned is not None:
                path = root / "eval" / f"{final.name}.json"
                key = step_key("eval", model=final_digest, eval=recipe.section_digest("eval"))
                steps.run(f"eval/{final.name}", key, path, lambda: _eval(settings, final, path, final.name))
                report.finetuned_eval = _load_eval(path)
                report.finetuned_comparison = compare(report.finetuned_eval, baseline)
            for g in recipe.gates_for(budget):
                if g.edge is None and report.finetuned_eval is not None and g.finetuned:
                    report.gates.append(check_gate(final.name, g, report.finetuned_eval, baseline))
                elif g.edge is None:
                    report.gates.append(check_gate(name, g, report.eval, baseline))
        if recipe.edge is not None:
            final_eval = report.finetuned_eval if report.finetuned is not None else report.eval
            report.edge = run_edge(recipe, steps, root, final, final_digest, settings, baseline, final_eval)
            files = {e.dtype: e for e in report.edge}
            for g in recipe.gates_for(budget):
                if g.edge is not None and baseline is not None and files[g.edge].eval is not None:
                    report.gates.append(check_gate(files[g.edge].file.name, g, files[g.edge].eval, baseline))
        builds.append(report)

    run = RunReport(
        recipe=recipe,
        recipe_file=str(recipe_file) if recipe_file else None,
        out_dir=root,
        model_dir=model_dir,
        model=identity,
        steps=steps.results,
        builds=builds,
        baseline=baseline,
    )
    run.write()
    return run


def _plan_files(
    recipe: Recipe, steps: Steps, root: Path, model_dir: Path, profile: Path, plan: Path, name: str, budget: float | int
) -> None:
    """builds/<build>.<format>.json(l) for each of recipe.plans.formats, each a resumable step."""
    from emo_prune.export.plans import FORMATS, export_plan

    for fmt in recipe.plans.formats:  # type: ignore[union-attr]
        path = contained_path(root, f"builds/{name}.{fmt}.{'jsonl' if fmt == 'vllm-ascend' else 'json'}", "plan file")
        source = profile if FORMATS[fmt].export_from == "profile" else plan
        selection = recipe.section_digest("selection")
        key = step_key("plans", source=output_digest(source), selection=selection, budget=budget_label(budget), format=fmt)
        steps.run(
            f"plans/{name}/{fmt}",
            key,
            path,
            lambda fmt=fmt, path=path, source=source: export_plan(
                source,
                fmt,
                path,
                model=model_dir,
                method=recipe.selection.method,
                domains=recipe.selection_domains,
                keep=str(budget) if fmt == "vllm-ascend" else None,
                overwrite=True,
            ),
        )


def _kept_counts(build: Path) -> list[int | None]:
    from emo_prune.select import Plan

    return Plan.load(build).kept_counts()
