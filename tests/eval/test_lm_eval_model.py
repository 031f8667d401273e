"""The `emo-prune` model type in lm-eval's registry, and `emo-prune eval` on the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from emo_prune.cli import app
from emo_prune.cli.console import out


def test_model_type_is_registered_and_scores_like_the_library(emo_model, task_dir):
    import lm_eval
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    import emo_prune.eval.__main__  # noqa: F401  (what `python -m emo_prune.eval` imports)
    from emo_prune.eval import EvalSettings, evaluate_model
    from emo_prune.eval.lm import EmoPruneLM

    assert get_model("emo-prune") is EmoPruneLM
    lm = get_model("emo-prune").create_from_arg_string(
        f"pretrained={emo_model},impl=eager,dtype=float32", {"batch_size": 2, "device": None}
    )
    assert lm.get_model_info()["experts_implementation"] == "eager"
    raw = lm_eval.simple_evaluate(
        model=lm, tasks=["t_mc"], task_manager=TaskManager(include_path=[str(task_dir)], include_defaults=False)
    )
    ours = evaluate_model(
        emo_model, EvalSettings(tasks=("t_mc",), include_paths=(str(task_dir),), impl="eager", dtype="float32", batch_size=2)
    )
    assert raw["results"]["t_mc"]["acc,none"] == ours.tasks["t_mc"].metrics["acc"].value


def test_eval_command_writes_json_and_markdown(emo_model, task_dir, tmp_path):
    out.json_mode = out.quiet = out.debug = False
    target = tmp_path / "results.json"
    args = ["--json", "eval", emo_model, "--tasks", "t_mc", "--baseline", emo_model, "--include-path", task_dir]
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--limit", "2", "--impl", "eager", "--out", target]])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # one JSON document on stdout
    assert data["comparison"][0]["retained"] == 1.0 and data["files"]["markdown"] == str(tmp_path / "results.md")
    assert json.loads(target.read_text())["settings"]["limit"] == 2
    assert "| t_mc | acc ↑ |" in (tmp_path / "results.md").read_text()

    bad = CliRunner().invoke(app, ["eval", str(emo_model), "--tasks", "t_mc", "--limit", "some", "--out", str(target)])
    assert bad.exit_code == 1 and "--limit 'some' is not a number" in bad.output
    bad = CliRunner().invoke(app, ["eval", str(emo_model), "--tasks", "t_mc", "--out", str(tmp_path / "r.txt")])
    assert bad.exit_code == 1 and "must end in .json" in bad.output
