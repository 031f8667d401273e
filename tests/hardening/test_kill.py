"""kill -9 in the middle of `run` (during an extract): nothing looks finished, and a rerun resumes to the same
bytes; kill -9 during an --overwrite: the target is whole or (without the kernel's swap) absent, never
half-written, and no folder found on disk is ever renamed into it.

(A kill during a plain `extract` is covered by tests/extract/test_extract_atomic.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from emo_prune.io import Checkpoint
from emo_prune.pipeline import load_recipe, run_recipe

DIE_DURING_EXTRACT = """
import os, sys
import emo_prune.extract.run as run
from emo_prune.pipeline import load_recipe, run_recipe
real, done = run.copy_into, []
def dying(*args):
    done.append(1)
    if len(done) == 6:
        os._exit(9)  # like SIGKILL: no cleanup handler runs
    return real(*args)
run.copy_into = dying
recipe, path = load_recipe(sys.argv[1])
run_recipe(recipe, sys.argv[2], recipe_file=path)
"""


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_kill_during_run_then_resume_gives_identical_builds(source_model, tmp_path):
    recipe_file = tmp_path / "recipe.yaml"
    recipe = {
        "name": "k",
        "model": str(source_model),
        "calibration": {
            "sources": ["builtin:math:train"],
            "domains": ["math"],
            "max_tokens": 300,
            "seq_len": 64,
            "device": "cpu",
        },
        "budgets": [0.5, 0.25],
        "verify": {"enabled": False},
    }
    recipe_file.write_text(yaml.safe_dump(recipe))
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = {**os.environ, "EMO_PRUNE_CACHE": str(tmp_path / "cache")}
    died = subprocess.run(
        [sys.executable, "-c", DIE_DURING_EXTRACT, str(recipe_file), str(killed)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert died.returncode == 9, died.stderr[-2000:]
    builds = killed / "builds"
    assert not (builds / "k-50pct").exists() and not (killed / "report.json").exists()
    for stale in builds.iterdir():  # only hidden leftovers: no config, no index, no .safetensors name
        assert stale.name.startswith("."), stale
        if stale.is_dir():
            assert not any(n.name.endswith((".safetensors", "config.json", ".index.json")) for n in stale.iterdir())
    assert not (killed / ".steps" / "extract__k-50pct.json").exists()

    parsed, path = load_recipe(recipe_file)
    resumed = run_recipe(parsed, killed, recipe_file=path)  # the dead run's lock does not block this
    assert {s.step: s.status for s in resumed.steps}["profile"] == "skipped"
    run_recipe(parsed, clean, recipe_file=path)
    for name in ("k-50pct", "k-25pct"):
        assert _files(killed / "builds" / name) == _files(clean / "builds" / name)
        Checkpoint.open(killed / "builds" / name)
    assert sorted(p.name for p in builds.iterdir()) == ["k-25pct", "k-50pct"]  # the dead run's temp folder is gone


DIE_DURING_REPLACE = """
import os, sys
import emo_prune.io.atomic as atomic
from emo_prune.extract import extract
from emo_prune.select import Plan
if sys.argv[3] == "after-swap":  # renameat2(RENAME_EXCHANGE) swapped old and new; die before the old is deleted
    atomic.remove_owned = lambda *args: os._exit(9)
else:  # a system without the swap: die between the two renames
    atomic.exchange = lambda a, b: False
    real = os.replace
    def dying(src, dst):
        real(src, dst)
        if ".emo-prune-tmp-old-" in str(dst):
            os._exit(9)  # the old output is aside, the new one not yet in place
    atomic.os.replace = dying
extract(sys.argv[1], Plan([[0, 1, 2, 7], [0, 1, 2, 7]]), sys.argv[2], overwrite=True)
"""


@pytest.mark.parametrize("moment", ["after-swap", "between-renames"])
def test_kill_while_replacing_never_promotes_a_folder_from_disk(model, plan_file, tmp_path, moment):
    """With the kernel's swap the target is never missing: a kill leaves the NEW output in place. Without
    it, a kill between the renames leaves no target, and the previous output aside is NOT renamed back by
    the next run: a folder found on disk is never promoted (its pid and markers can be forged); the user
    had asked to replace it. Either way the next write of the target removes every leftover."""
    from emo_prune.extract import extract
    from emo_prune.select import Plan

    out = tmp_path / "out"
    extract(model, Plan.load(plan_file), out)
    env = {**os.environ, "EMO_PRUNE_CACHE": str(tmp_path / "cache")}
    died = subprocess.run([sys.executable, "-c", DIE_DURING_REPLACE, str(model), str(out), moment], env=env, timeout=300)
    assert died.returncode == 9
    if moment == "after-swap":
        assert Plan.load(out).experts_kept_per_layer == [[0, 1, 2, 7], [0, 1, 2, 7]]  # the new output, whole
        extract(model, Plan.load(plan_file), out, overwrite=True)
    else:
        assert not out.exists()
        extract(model, Plan.load(plan_file), out)
    assert Plan.load(out).experts_kept_per_layer == [[1, 4, 6, 7], [1, 4, 6, 7]]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []
