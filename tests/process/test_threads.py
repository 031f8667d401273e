"""--threads / EMO_PRUNE_THREADS reach torch; OpenMP is told to wait passively before torch loads (emo_prune/process/threads.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from emo_prune.errors import ProfileError
from emo_prune.process.threads import usable_cores


@pytest.fixture
def seen_threads(monkeypatch):
    """Replace profiling by a sentinel that records torch's intra-op thread count at the moment the work
    would start, then stops the command (no model is loaded)."""
    import emo_prune.profile.runner as runner

    seen: list[int] = []
    before = torch.get_num_threads()

    def sentinel(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise ProfileError("sentinel: profiling reached")

    monkeypatch.setattr(runner, "profile_to_file", sentinel)
    monkeypatch.delenv("EMO_PRUNE_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield seen
    torch.set_num_threads(before)


def _profile(cli, tmp_path, *flags):
    result = cli("profile", "builtin:tiny-emo", "--domain", "code", "--out", tmp_path / "p.safetensors", *flags)
    assert result.exit_code == 1 and "sentinel: profiling reached" in result.stderr, result.output
    return result


def test_threads_flag_reaches_torch(cli, tmp_path, seen_threads):
    _profile(cli, tmp_path, "--threads", "1")
    _profile(cli, tmp_path, "--threads", "3")
    assert seen_threads == [1, 3]


def test_environment_variable_is_honoured_and_the_flag_wins(cli, tmp_path, seen_threads, monkeypatch):
    monkeypatch.setenv("EMO_PRUNE_THREADS", "3")
    _profile(cli, tmp_path)
    _profile(cli, tmp_path, "--threads", "1")
    assert seen_threads == [3, 1]


def test_default_is_the_cores_this_process_may_use(cli, tmp_path, seen_threads, monkeypatch):
    _profile(cli, tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # a user's own OpenMP setting comes before the cores
    _profile(cli, tmp_path)
    assert seen_threads == [len(os.sched_getaffinity(0)), 3] and seen_threads[0] == usable_cores()


def test_a_bad_environment_value_is_one_line(cli, tmp_path, seen_threads, monkeypatch):
    monkeypatch.setenv("EMO_PRUNE_THREADS", "many")
    result = cli("profile", "builtin:tiny-emo", "--domain", "code", "--out", tmp_path / "p.safetensors")
    assert result.exit_code == 1 and "EMO_PRUNE_THREADS 'many' is not a thread count" in result.stderr
    assert seen_threads == [] and not (tmp_path / "p.safetensors").exists()


def test_threads_on_every_compute_command(cli):
    for command in (
        ["profile", "run"],
        ["select"],
        ["extract"],
        ["verify"],
        ["eval"],
        ["generate"],
        ["pool-index"],
        ["export"],
        ["run"],
        ["bench"],
    ):
        result = cli(*command, "--help")
        assert "--threads" in result.stdout, command


def test_commands_that_need_no_torch_still_load_none(tmp_path):
    """`--threads` on select / extract --plan sets OpenMP's count for later, without importing torch."""
    code = (
        "import sys, os; from emo_prune.process.threads import apply_threads; "
        "n = apply_threads(2); print(n, 'torch' in sys.modules, os.environ['OMP_NUM_THREADS'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "EMO_PRUNE_THREADS")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["2", "False", "2"]


def _wait_policy(env: dict[str, str]) -> str:
    """OMP_WAIT_POLICY as torch's OpenMP runtime would read it, after the CLI module is imported."""
    code = "import os, emo_prune.cli.app, torch; print(os.environ.get('OMP_WAIT_POLICY'))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_openmp_waits_passively_unless_the_user_chose():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _wait_policy(env) == "PASSIVE"
    assert _wait_policy(env | {"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_others_load_takes_this_process_out():
    from emo_prune.process.threads import CpuSample, others_load

    start = CpuSample(wall_s=10.0, cores_busy_s=100.0, own_cpu_s=1.0)
    # 0.5 s: the cores were busy 1.0 s in all, 0.5 s of it this process's own work -> others kept 1 core busy
    assert others_load(start, CpuSample(10.5, 101.0, 1.5)) == pytest.approx(1.0)
    assert others_load(start, CpuSample(10.5, 100.5, 1.5)) == 0.0  # never negative (tick rounding)
    assert others_load(start, start) == 0.0


# The CLI's start-up in a fresh process (torch not loaded), with the load sample replaced: what OpenMP
# would read when torch loads after the command's --threads are applied.
_DECIDE = """
import os, sys
from emo_prune.process import threads
busy = float(sys.argv[1])
samples = iter([threads.CpuSample(0.0, 0.0, 0.0), threads.CpuSample(1.0, busy + 0.8, 0.8)])
threads.sample_cpu = lambda: next(samples)
threads.time.monotonic = lambda: 1.0
import emo_prune.cli
threads.apply_threads(None)
print(os.environ.get("OMP_WAIT_POLICY"), "|", threads.wait_decision, "|", "torch" in sys.modules)
"""


def _decided(others_busy: float, env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _DECIDE, str(others_busy)], env=env, capture_output=True, text=True, check=True
    )
    return [part.strip() for part in result.stdout.split("|")]


def test_the_wait_follows_the_load_the_command_starts_with():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    policy, decision, torch_loaded = _decided(0.1, env)  # quiet: OpenMP's own spin wait
    assert (policy, torch_loaded) == ("None", "False") and decision.startswith("spin") and "0.10 cores" in decision
    policy, decision, _ = _decided(1.0, env)  # one core busy with other work: workers sleep
    assert policy == "PASSIVE" and decision.startswith("passive") and "1.00 cores" in decision
    policy, decision, _ = _decided(0.1, env | {"OMP_WAIT_POLICY": "ACTIVE"})  # the user's choice wins
    assert policy == "ACTIVE" and "user" in decision
    policy, _, _ = _decided(1.0, env | {"GOMP_SPINCOUNT": "1000"})
    assert policy == "None"
