"""`emo-prune select / extract / verify` end to end through the CLI, --json, and one-line errors."""

from __future__ import annotations

import json

import pytest
from plan_helpers import random_profile

from emo_prune.io import Checkpoint, model_identity


@pytest.fixture
def profiled(tiny, tmp_path):
    """A tiny EMO model and a profile file that belongs to it."""
    model = tiny("emo", layers=2, experts=16, top_k=2)
    checkpoint = Checkpoint.open(model)
    profile = random_profile(checkpoint.architecture, {"code": 400, "math": 200}, model=model_identity(checkpoint))
    return model, profile.save(tmp_path / "profile.safetensors")


def test_select_extract_verify(cli, profiled, tmp_path):
    model, profile = profiled
    plan = tmp_path / "plan.json"
    selected = cli(
        "--json", "select", model, "--profile", profile, "--domain", "code", "--domain", "math", "--keep", "0.25", "--out", plan
    )
    assert selected.exit_code == 0, selected.output
    data = json.loads(selected.stdout)
    assert data["num_experts_kept"] == [4, 4] and data["combine"] == "union" and set(data["coverage"]) == {"code", "math"}
    assert json.loads(plan.read_text())["experts_kept_per_layer"] == data["experts_kept_per_layer"]

    extracted = cli("extract", model, "--plan", plan, "--out", tmp_path / "out")
    assert extracted.exit_code == 0, extracted.output
    assert "4 experts per MoE layer" in extracted.output
    checked = cli("verify", model, tmp_path / "out", "--prompts", "2")
    assert checked.exit_code == 0 and "max abs logit difference" in checked.output and "equal" in checked.output
    as_json = json.loads(cli("--json", "verify", model, tmp_path / "out", "--prompts", "2").stdout)
    assert as_json["passed"] and as_json["max_abs_diff"] <= 1e-4 and as_json["prompts"] == 2


def test_extract_selects_inline_and_sets_nest(cli, profiled, tmp_path):
    model, profile = profiled
    for keep in ("0.25", "0.125"):
        done = cli("extract", model, "--profile", profile, "--domain", "code", "--keep", keep, "--out", tmp_path / keep)
        assert done.exit_code == 0, done.output
    quarter = json.loads((tmp_path / "0.25" / "emo_prune.json").read_text())["experts_kept_per_layer"]
    eighth = json.loads((tmp_path / "0.125" / "emo_prune.json").read_text())["experts_kept_per_layer"]
    assert all(set(a) < set(b) for a, b in zip(eighth, quarter))


def test_verify_failure_exits_1_with_one_line(cli, tiny, tmp_path):
    model = tiny("emo")
    assert cli("extract", model, "--keep", "0.5", "--method", "random", "--out", tmp_path / "out").exit_code == 0
    manifest = tmp_path / "out" / "emo_prune.json"
    data = json.loads(manifest.read_text())
    # other routed experts, same counts: 3 routed + the shared expert 7
    data["experts_kept_per_layer"] = [[e for e in range(7) if e not in ids][:3] + [7] for ids in data["experts_kept_per_layer"]]
    manifest.write_text(json.dumps(data))
    failed = cli("verify", model, tmp_path / "out", "--prompts", "2")
    assert failed.exit_code == 1
    assert "verification failed:" in failed.output and "above the tolerance" in failed.output


@pytest.mark.parametrize(
    "args, message",
    [
        ("select {model} --keep 0.5 --out {tmp}/p.json", "plan error: --method mass reads a profile"),
        ("select {model} --profile {profile} --domain law --keep 0.5 --out {tmp}/p.json", "profile error: domain 'law'"),
        (
            "select {model} --profile {profile} --domain code --keep 0.5 --budget global --method greedy --out {tmp}/p.json",
            "needs --budget uniform",
        ),
        ("extract {model} --plan {tmp}/p.json --keep 0.5 --out {tmp}/o", "either --plan"),
        ("extract {model} --plan {tmp}/missing.json --out {tmp}/o", "plan file not found"),
        ("extract {model} --keep 0.5 --method random --out {tmp}/o --dtype int3", "--dtype 'int3'"),
        ("extract {model} --keep 0.5 --method random --out {model}/sub", "overlaps the input"),
    ],
)
def test_errors_are_one_line_and_exit_1(cli, profiled, tmp_path, args, message):
    model, profile = profiled
    filled = [a.format(model=model, profile=profile, tmp=tmp_path) for a in args.split()]
    result = cli(*filled)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_profile_of_another_model_is_refused(cli, tiny, profiled, tmp_path):
    _, profile = profiled
    other = tiny("emo", layers=2, experts=16, top_k=2, seed=1)
    result = cli("select", other, "--profile", profile, "--domain", "code", "--keep", "0.5", "--out", tmp_path / "p.json")
    assert result.exit_code == 1 and "profile error: this profile was made from" in result.output
