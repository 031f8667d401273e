"""emo-prune from Python: a recipe built in code, run end to end, its gates checked; then one eval call.

    python examples/python_api.py [OUT_DIR]        (default: runs/python-api; offline, about a minute)

Everything `emo-prune run` and `emo-prune eval` do is a library call; the CLI only renders results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emo_prune.errors import GateFailure
from emo_prune.eval import EvalSettings, evaluate, write_report
from emo_prune.pipeline import run_recipe, validate_recipe


def main(out_dir: Path) -> int:
    # 1. A recipe is a validated, frozen object; a dict (or YAML) with a bad field raises RecipeError.
    recipe = validate_recipe(
        {
            "name": "python-api",
            "model": "builtin:tiny-emo",
            "calibration": {"sources": ["builtin:math:train"], "domains": ["math"], "max_tokens": 5000, "seq_len": 256},
            "budgets": [0.25],
            "eval": {"tasks": ["emo_ppl_math", "emo_math_mc"], "limit": 8},
            "gates": [{"task": "emo_ppl_math", "min_retained": 0.9}],
        }
    )

    # 2. Profile -> select -> extract -> verify -> eval, resumable: run it twice and the second run skips.
    report = run_recipe(recipe, out_dir)
    for build in report.builds:
        print(f"{build.folder}: experts per layer {build.kept_counts}, verify max diff {build.verify['max_abs_diff']:.1e}")
        for row in build.comparison:
            print(
                f"  {row.task:14} {row.metric:15} original {row.baseline:.4g}  pruned {row.value:.4g}  retained {row.retained:.1%}"
            )
    print(f"report: {out_dir / 'report.md'}")

    # 3. A single evaluation, pruned next to original with identical settings (what `emo-prune eval` does).
    settings = EvalSettings(tasks=("emo_math_mc",), limit=8, impl="auto")
    comparison = evaluate(report.builds[0].folder, settings, baseline_dir=report.model_dir)
    write_report(comparison, out_dir / "eval-math-mc.json")
    print(comparison.markdown())

    # 4. Gates: GateFailure carries one line per failed gate.
    try:
        report.check_gates()
    except GateFailure as failure:
        print(f"gates failed:\n{failure}")
        return 1
    print("all gates hold")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", nargs="?", type=Path, default=Path("runs/python-api"))
    sys.exit(main(parser.parse_args().out_dir))
