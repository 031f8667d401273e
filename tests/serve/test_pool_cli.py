"""`emo-prune generate` and `emo-prune eval --pool` on tiny models (offline tasks from recipes/tasks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emo_prune.cli.app import app
from emo_prune.extract import extract
from emo_prune.io import Checkpoint
from emo_prune.select import SelectOptions
from emo_prune.select.selector import select_experts


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def build(pool_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    original = pool_models["shared"]
    plan = select_experts(Checkpoint.open(original).architecture, SelectOptions(keep="0.5", method="random", seed=2))
    return extract(original, plan, tmp_path_factory.mktemp("b") / "build").out_dir


def test_generate_in_pools_reports_pools_cache_and_memory(pool_models: dict[str, Path]) -> None:
    result = invoke(
        "--json", "generate", pool_models["shared"], "--pool", "0.5", "--prompt", "def add(a, b):", "--max-new-tokens", 5
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    pool = data["pool"]
    assert set(pool["pools"]) == {"0", "1", "2"} and all(len(ids) == 8 for ids in pool["pools"].values())
    assert pool["cache"]["misses"] == 24 and pool["resident_expert_bytes"] > 0 and data["rss_bytes"] > 0
    assert 1 <= data["new_tokens"] <= 5


def test_generate_streams_text(pool_models: dict[str, Path]) -> None:
    result = invoke("generate", pool_models["shared"], "--pool", "8", "--prompt", "hello", "--max-new-tokens", 3)
    assert result.exit_code == 0, result.output
    assert "pools chosen from the prompt" in result.output and "experts resident" in result.output


def test_generate_on_a_build_warns_below_a_fraction_of_its_calibration_coverage(build: Path) -> None:
    # a random plan records no coverage: the calibration coverage is a flat router's, 7 of 15 routed experts
    result = invoke("--json", "generate", build, "--prompt", "hello there", "--max-new-tokens", 2, "--coverage-warn", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{") :])
    assert data["calibration_coverage"] == pytest.approx(7 / 15) and data["coverage_warn"] == pytest.approx(3 * 7 / 15)
    assert 0 < data["coverage"]["coverage"] < 1 and data["low_coverage"] is True
    assert "x the 46.7% of its calibration text" in result.output
    quiet = invoke("--json", "generate", build, "--prompt", "hello there", "--max-new-tokens", 2, "--coverage-warn", "0")
    assert json.loads(quiet.output)["low_coverage"] is False and "warning" not in quiet.output


def test_eval_pool_full_size_equals_the_baseline(pool_models: dict[str, Path], tmp_path: Path) -> None:
    model = pool_models["shared"]
    out = tmp_path / "r.json"
    result = invoke("--json", "eval", model, "--pool", "1.0", "--tasks", "emo_answer_math,emo_answer_code", "--limit", 3,
                    "--baseline", model, "--dtype", "float32", "--impl", "eager", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    for row in data["comparison"]:
        assert row["value"] == pytest.approx(row["baseline"], rel=1e-5)  # same tokens, same scores
    requests = data["model"]["requests"]
    assert len(requests) == 6 and all(len(r["pools"]) == 3 for r in requests)


def test_eval_pool_reports_each_request(pool_models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = invoke(
        "eval", pool_models["shared"], "--pool", "0.5", "--draft", 4, "--tasks", "emo_answer_prose", "--limit", 2, "--out", out
    )
    assert result.exit_code == 0, result.output
    assert "pools: 2 requests" in result.output


def test_eval_pool_refuses_rolling_tasks(pool_models: dict[str, Path], tmp_path: Path) -> None:
    result = invoke(
        "eval", pool_models["shared"], "--pool", "0.5", "--tasks", "emo_ppl_math", "--limit", 1, "--out", tmp_path / "r.json"
    )
    assert result.exit_code == 1
    assert "loglikelihood_rolling" in result.output and "emo_answer_math" in result.output


def test_eval_of_a_build_reports_coverage(build: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = invoke(
        "eval", build, "--tasks", "emo_answer_math", "--limit", 2, "--impl", "eager", "--coverage-warn", "3", "--out", out
    )
    assert result.exit_code == 0, result.output
    coverage = json.loads(out.read_text())["model"]["coverage"]
    assert coverage["calibration_coverage"] == pytest.approx(7 / 15) and coverage["warn_below"] == pytest.approx(3 * 7 / 15)
    assert len(coverage["per_request"]) == 2 and coverage["low"] == 2
    assert "outside the domain" in result.output and "3.00 x the 46.7% of its calibration text" in result.output
