"""A killed run resumes: kill -9 mid-training, rerun the same command, and it continues from the last
checkpoint to the same weights as a run never interrupted. And 2 CPU processes (torchrun, gloo, DDP) on the
same global batch end where 1 process does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from finetune_helpers import params

from emo_prune.train.finetune import work_folder

DIE_AT_STEP_5 = """
import os, sys
import emo_prune.train.hf_trainer as hf
real = hf._Progress.on_log
def dying(self, args, state, control, logs=None, **kwargs):
    if state.global_step == 5:
        os._exit(9)  # like SIGKILL: no cleanup handler runs; checkpoint-4 is the last one on disk
    return real(self, args, state, control, logs=logs, **kwargs)
hf._Progress.on_log = dying
from emo_prune.cli import main
sys.argv = ["emo-prune", *sys.argv[1:]]
main()
"""

RUN_LIBRARY = """
import json, sys
from emo_prune.train.finetune import FinetuneSettings, finetune
model, source, out, settings = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
finetune(model, [source], out, FinetuneSettings(**settings))
"""


def env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("extra", [[], ["--lora", "4", "--train", "experts+shared"]], ids=["full weights", "lora"])
def test_kill_9_then_rerun_ends_with_the_uninterrupted_weights(cli, build, data, tmp_path, extra):
    # --threads 1 in every process: bit-equal weights need the same reduction order on both sides of the kill
    args = [
        "--calib",
        str(data["text"]),
        "--batch-size",
        "2",
        "--seq-len",
        "16",
        "--lr",
        "1e-2",
        "--checkpoint-every",
        "1",
        "--threads",
        "1",
        *extra,
    ]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    died = subprocess.run(
        [sys.executable, "-c", DIE_AT_STEP_5, "finetune", str(build), *args, "--out", str(killed)], env=env(), timeout=600
    )
    assert died.returncode == 9 and not killed.exists()
    work = work_folder(killed)
    assert (work / "checkpoint-4" / "trainer_state.json").is_file()
    resumed = cli("finetune", build, *args, "--out", killed, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["resumed_from"] == 4 and not work.exists()
    assert cli("finetune", build, *args, "--out", clean).exit_code == 0
    a, b = params(killed), params(clean)
    assert all(torch.equal(a[n], b[n]) for n in a), [n for n in a if not torch.equal(a[n], b[n])]
    steps = [e["step"] for e in json.loads((killed / "emo_prune.json").read_text())["finetune"]["losses"]]
    assert steps == list(range(1, len(steps) + 1))  # the record holds every step once, across the kill


def test_a_rerun_with_other_settings_is_refused(cli, build, data, tmp_path):
    out = tmp_path / "out"
    work = work_folder(out)
    work.mkdir()
    (work / "run.json").write_text(json.dumps({"settings": "another run"}))
    result = cli("finetune", build, "--calib", data["text"], "--batch-size", "2", "--seq-len", "16", "--out", out)
    assert result.exit_code == 1 and "other settings" in result.stderr and not out.exists()


@pytest.mark.slow
def test_two_processes_match_one_on_the_same_global_batch(build, data, tmp_path):
    settings = json.dumps({"batch_size": 4, "micro_batch": 2, "seq_len": 16, "lr": 1e-2, "warmup": 0.0})
    script = tmp_path / "run_library.py"
    script.write_text(RUN_LIBRARY)
    one = subprocess.run(
        [sys.executable, str(script), str(build), str(data["text"]), str(tmp_path / "one"), settings], env=env(), timeout=600
    )
    assert one.returncode == 0
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", str(script),
         str(build), str(data["text"]), str(tmp_path / "two"), settings],
        env=env(), timeout=600, capture_output=True, text=True,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    record = json.loads((tmp_path / "two" / "emo_prune.json").read_text())["finetune"]
    assert record["processes"] == 2 and record["gradient_accumulation"] == 1
    a, b, start = params(tmp_path / "one"), params(tmp_path / "two"), params(build)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=1e-4), (name, (a[name] - b[name]).abs().max())
    assert any(not torch.equal(a[n], start[n]) for n in a)
