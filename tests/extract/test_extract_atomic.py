"""Extraction writes a complete folder or nothing: determinism, refused outputs, disk full, a kill mid-way,
and it reads only the bytes of the experts it keeps."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections import namedtuple

import pytest

import emo_prune.extract.source as source_module
from emo_prune.errors import CheckpointError, OutputError
from emo_prune.extract import build_jobs, extract
from emo_prune.io import Checkpoint, build_inventory
from emo_prune.select import Plan

PLAN = Plan([[1, 4, 6, 7], [0, 2, 5, 7]])


def folder_bytes(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def leftovers(out):
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}"))


def test_same_inputs_give_identical_bytes(tiny, tmp_path):
    model = tiny("emo", storage="fused")
    extract(model, PLAN, tmp_path / "a" / "out", max_shard_size="100kB")
    extract(model, PLAN, tmp_path / "b" / "out", max_shard_size="100kB")
    a, b = folder_bytes(tmp_path / "a" / "out"), folder_bytes(tmp_path / "b" / "out")
    assert a == b and len([n for n in a if n.endswith(".safetensors")]) > 1
    assert {"config.json", "tokenizer.json", "generation_config.json", "README.md", "emo_prune.json"} <= a.keys()


def test_output_paths_refused(tiny, tmp_path):
    model = tiny("olmoe")
    copy = tmp_path / "model"
    copy.mkdir()
    for f in model.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    before = folder_bytes(copy)
    for bad in (copy, copy / "sub", tmp_path):  # the input itself, inside it, around it
        with pytest.raises(OutputError, match="overlaps the input"):
            extract(copy, PLAN, bad, overwrite=True)
    assert folder_bytes(copy) == before
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        extract(copy, PLAN, existing)
    with pytest.raises(OutputError, match="emo-prune did not write it"):
        extract(copy, PLAN, existing, overwrite=True)
    assert (existing / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_a_previous_output(tiny, tmp_path):
    model = tiny("olmoe")
    out = tmp_path / "out"
    extract(model, PLAN, out)
    extract(model, Plan([[0, 1], [2, 3]]), out, overwrite=True)
    assert json.loads((out / "config.json").read_text())["num_experts"] == 2
    assert leftovers(out) == []


def test_disk_full_leaves_nothing(tiny, tmp_path, monkeypatch):
    model = tiny("emo")
    calls = {"n": 0}
    real = os.sendfile

    def filling_up(*args):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    monkeypatch.setattr(source_module.os, "sendfile", filling_up)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="No space left on device"):
        extract(model, PLAN, out)
    assert not out.exists() and leftovers(out) == []


def test_without_file_to_file_sendfile_the_bytes_are_the_same(tiny, tmp_path, monkeypatch):
    model = tiny("emo", storage="fused")
    extract(model, PLAN, tmp_path / "a" / "out")

    def unsupported(*_args):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(source_module.os, "sendfile", unsupported)
    extract(model, PLAN, tmp_path / "b" / "out")
    assert folder_bytes(tmp_path / "a" / "out") == folder_bytes(tmp_path / "b" / "out")


def test_too_little_free_space_is_refused_up_front(tiny, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("emo_prune.extract.run.shutil.disk_usage", lambda _p: usage(10**6, 10**6, 1000))
    with pytest.raises(OutputError, match="bytes free, the output needs"):
        extract(tiny("emo"), PLAN, tmp_path / "out")
    assert leftovers(tmp_path / "out") == [] and not (tmp_path / "out").exists()


CRASH = """
import os, sys
import emo_prune.extract.source as source
from emo_prune.extract import extract
from emo_prune.select import Plan
real, done = source.copy_into, []
def dying(*args):
    done.append(1)
    if len(done) == 4:
        os._exit(9)  # like SIGKILL: no cleanup handler runs
    return real(*args)
source.copy_into = dying
import emo_prune.extract.run as run
run.copy_into = dying
extract(sys.argv[1], Plan([[1, 4, 6, 7], [0, 2, 5, 7]]), sys.argv[2])
"""


def test_a_kill_mid_way_leaves_nothing_that_looks_like_a_checkpoint(tiny, tmp_path):
    model, out = tiny("emo"), tmp_path / "out"
    env = {**os.environ, "EMO_PRUNE_CACHE": str(tmp_path / "cache")}
    died = subprocess.run(
        [sys.executable, "-c", CRASH, str(model), str(out)], capture_output=True, text=True, env=env, timeout=300
    )
    assert died.returncode == 9, died.stderr[-2000:]
    assert not out.exists()
    # the hidden temporary folder of the dead run, and its lock file (unlocked: the kernel let go at the kill)
    (stale,) = [tmp_path / name for name in leftovers(out) if not name.endswith(".emo-prune-lock")]
    names = {p.name for p in stale.iterdir()}
    assert "config.json" not in names and "model.safetensors.index.json" not in names
    assert not any(n.endswith(".safetensors") for n in names)
    with pytest.raises(CheckpointError):
        Checkpoint.open(stale)
    extract(model, PLAN, out)  # the next run succeeds and removes the dead run's folder
    assert leftovers(out) == [] and Checkpoint.open(out).architecture.layouts[0].num_experts == 4


@pytest.mark.parametrize("storage", ["per_expert", "fused"])
def test_reads_only_the_kept_experts(tiny, storage):
    model = tiny("qwen2_moe", storage=storage)
    checkpoint = Checkpoint.open(model)
    arch = checkpoint.architecture
    kept = [[1, 4, 6, 7], [0, 2, 5, 7]]
    jobs = build_jobs(checkpoint, build_inventory(checkpoint), kept)
    read = sorted(r for job in jobs for r in job.source.ranges)
    assert sum(length for _, length in read) == sum(job.spec.nbytes for job in jobs)  # nothing read twice or wasted
    for (a, la), (b, _) in zip(read, read[1:]):
        assert a + la <= b  # no byte read twice
    dropped = []  # byte extents of every dropped expert
    for layer, ids in enumerate(kept):
        for e in sorted(set(range(8)) - set(ids)):
            if storage == "fused":
                for which in ("gate_up", "down"):
                    info = checkpoint.tensor(arch.fused_key(layer, which))
                    start = checkpoint.shards[checkpoint.weight_map[info.name]].data_start + info.begin
                    row = info.nbytes // 8
                    dropped.append((start + e * row, row))
            else:
                for proj in ("gate", "up", "down"):
                    info = checkpoint.tensor(arch.per_expert_key(layer, e, proj))
                    start = checkpoint.shards[checkpoint.weight_map[info.name]].data_start + info.begin
                    dropped.append((start, info.nbytes))
    for d, ld in dropped:
        assert all(a + la <= d or d + ld <= a for a, la in read)
    expert_bytes = sum(job.spec.nbytes for job in jobs if ".experts." in job.spec.name)
    assert expert_bytes == 2 * 4 * 3 * 64 * 32 * 4  # 2 layers x 4 kept x (gate, up, down) [32, 64] fp32
