"""One writer per output folder: a second extract (or run) into the same --out fails at once, never both succeed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import yaml
from hardening_helpers import one_line_error, snapshot

from emo_prune.io.lock import FolderLock


def test_a_held_lock_fails_a_second_extract_at_once(cli, model, plan_file, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def too_late(*_args):
        raise AssertionError("the lock must be taken before hashing the model or scanning for NaN")

    with monkeypatch.context() as patch, FolderLock(out):
        patch.setattr("emo_prune.extract.run.model_identity", too_late)
        patch.setattr("emo_prune.extract.run.nonfinite_tensors", too_late)
        before = snapshot(tmp_path)
        started = time.perf_counter()
        result = cli("extract", model, "--plan", plan_file, "--out", out)
        one_line_error(result, "output busy:", f"{out} is being written by another emo-prune process (pid {os.getpid()})")
        assert time.perf_counter() - started < 60  # no waiting on the holder
        assert snapshot(tmp_path) == before
    assert cli("extract", model, "--plan", plan_file, "--out", out).exit_code == 0  # released: free again


def test_a_held_lock_fails_a_second_run(cli, source_model, tmp_path):
    recipe = {"name": "r", "model": str(source_model), "calibration": {"sources": ["builtin:math:train"]}, "budgets": [0.5]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with FolderLock(tmp_path / "run"):
        before = snapshot(tmp_path)
        result = cli("run", tmp_path / "recipe.yaml", "--out", tmp_path / "run")
        one_line_error(result, "output busy:", "is being written by another emo-prune process")
        assert snapshot(tmp_path) == before


RACE = """
import sys, time
from emo_prune.extract import extract
from emo_prune.select import Plan
from emo_prune.errors import EmoPruneError
while time.time() < float(sys.argv[3]):  # both processes start extracting at the same instant
    time.sleep(0.001)
try:
    extract(sys.argv[1], Plan([[1, 4, 6, 7], [1, 4, 6, 7]]), sys.argv[2])
except EmoPruneError as error:
    print(f"{error.kind}: {error}")
    sys.exit(1)
"""


def test_two_concurrent_extracts_never_both_succeed(model, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "EMO_PRUNE_CACHE": str(tmp_path / "cache")}
    start_at = str(time.time() + 25)  # after both interpreters have imported torch
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE, str(model), str(out), start_at], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stdout.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    (loser,) = [text for code, text in results if code == 1]
    assert loser.startswith(("output busy:", "output error:")) and len(loser.strip().splitlines()) == 1, loser
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "model", "out"]  # no temp folder, no lock file left
