"""Every command refuses what it cannot finish BEFORE its heavy work (issue 25): the heavy function is
replaced by a sentinel that counts its calls, so the tests assert that it never ran (never on wall time)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.hardening.hardening_helpers import one_line_error, snapshot


@pytest.fixture
def heavy(monkeypatch):
    """Counts calls of profiling and of loading a model for lm-eval; each raises if it is reached."""
    import emo_prune.eval.lm as lm
    import emo_prune.profile.runner as runner

    calls: list[str] = []

    def sentinel(name):
        def called(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} ran before the refusal")

        return called

    monkeypatch.setattr(runner, "profile_to_file", sentinel("profile"))
    monkeypatch.setattr(lm, "EmoPruneLM", sentinel("load for lm-eval"))
    return calls


def test_edge_recipe_without_llama_cpp_is_refused_before_profiling(cli, tmp_path, monkeypatch, heavy):
    import emo_prune.pipeline.precheck as precheck

    real = importlib.util.find_spec
    monkeypatch.setattr(precheck.importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    one_line_error(cli("run", "quickstart-edge", "--out", tmp_path / "run"), "needs llama-cpp-python", "emo-prune[edge]")
    assert heavy == [] and not (tmp_path / "run").exists()


def test_a_task_whose_data_is_not_here_is_refused_before_loading_declared_offline(cli, tmp_path, monkeypatch, heavy):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache: gsm8k is not in it
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    line = one_line_error(
        cli("eval", "builtin:tiny-emo", "--tasks", "gsm8k", "--out", tmp_path / "r.json"), "gsm8k (openai/gsm8k)"
    )
    assert "HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set" in line
    assert heavy == [] and snapshot(tmp_path) == {}


def test_a_task_whose_data_is_not_here_is_refused_when_the_hub_is_unreachable(cli, tmp_path, monkeypatch, heavy):
    import emo_prune.eval.taskdata_check as check

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    probes: list[int] = []
    monkeypatch.setattr(check, "hub_reachable", lambda: probes.append(1) or False)
    one_line_error(
        cli("eval", "builtin:tiny-emo", "--tasks", "gsm8k", "--out", tmp_path / "r.json"), "cannot be reached", "gsm8k"
    )
    assert probes == [1] and heavy == []  # one probe, no retries, no model loaded


def test_a_recipe_whose_task_data_is_not_here_is_refused_before_profiling(cli, tmp_path, monkeypatch, heavy):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    result = cli("run", "quickstart", "--out", tmp_path / "run", "--set", "eval.tasks=[emo_ppl_code, gsm8k]")
    one_line_error(result, "gsm8k (openai/gsm8k)")
    assert heavy == [] and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["extract", "emo-small", "--keep", "0.125", "--domain", "code"],
        ["profile", "emo-small", "--domain", "code"],
        ["eval", "emo-small"],
        ["inspect", "emo-small"],
    ],
)
def test_a_model_that_is_not_there_is_refused_first_with_did_you_mean(cli, tmp_path, monkeypatch, heavy, command):
    monkeypatch.chdir(tmp_path)
    one_line_error(cli(*command), "model folder not found: emo-small", "did you mean builtin:emo-small?")
    assert heavy == [] and snapshot(tmp_path) == {}


def test_an_existing_profile_output_is_refused_before_torch_loads(cli, tmp_path, monkeypatch, heavy):
    (tmp_path / "p.safetensors").write_bytes(b"not ours")
    one_line_error(
        cli("profile", "builtin:tiny-emo", "--domain", "code", "--out", tmp_path / "p.safetensors"), "is not an emo-prune profile"
    )
    assert heavy == [] and (tmp_path / "p.safetensors").read_bytes() == b"not ours"
