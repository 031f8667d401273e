"""Multi-process profiling (2 gloo processes) and layerwise variants equal the single-process profile."""

from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.multiprocessing as mp

from emo_prune.profile import Profile
from emo_prune.profile.batches import TokenizedDocument, shard_documents
from emo_prune.profile.runner import ProfileSettings, profile_model
from emo_prune.testing import write_tiny_model
from tests.profile.dist_worker import profile_rank

SETTINGS = dict(seq_len=16, batch_size=3, max_tokens=None, device="cpu", dtype="float32")
EXACT = ("tokens", "pool_25", "pool_12")


def assert_same(a: Profile, b: Profile) -> None:
    assert set(a.domains) == set(b.domains)
    for name, stats in b.domains.items():
        got = a.domains[name]
        assert (got.num_tokens, got.num_documents) == (stats.num_tokens, stats.num_documents)
        for stat, tensor in stats.expert.items():
            tol = 0 if stat in EXACT else 1e-6
            torch.testing.assert_close(got.expert[stat], tensor, rtol=tol, atol=tol, msg=lambda m: f"{name}/{stat}: {m}")
        torch.testing.assert_close(got.entropy, stats.entropy, rtol=1e-6, atol=1e-6)


def test_shards_cover_every_document_once():
    docs = [TokenizedDocument(d, "s", [i]) for i, d in enumerate("aabababbb")]
    shards = [shard_documents(docs, r, 3) for r in range(3)]
    assert sorted(d.ids[0] for s in shards for d in s) == list(range(9))
    assert all({d.domain for d in s} == {"a", "b"} for s in shards)


def test_two_gloo_processes_equal_one(tiny_models, calib_docs, tmp_path):
    model = tiny_models("emo")
    calib = tmp_path / "calib.jsonl"
    calib.write_text("".join(json.dumps({"text": d.text, "domain": d.domain}) + "\n" for d in calib_docs))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "dist.safetensors"
    mp.spawn(profile_rank, args=(2, port, str(model), str(calib), str(out)), nprocs=2, join=True)
    single = profile_model(model, calib_docs, ProfileSettings(**SETTINGS))
    distributed = Profile.load(out)
    assert_same(distributed, single)
    assert distributed.settings["world_size"] == 2


def test_layerwise_sharded_per_expert_with_offload(tmp_path, calib_docs):
    # several small shards, per-expert keys, an always-active expert list: the layerwise loader stacks
    # per-expert tensors read from different shards, activations go through disk
    model = write_tiny_model(
        tmp_path / "emo", "emo", seed=5, layers=2, hidden=32, expert_width=16, experts=6, top_k=3,
        always_active=[0, 4], max_shard_size="20KB",
    )  # fmt: skip
    assert len(list(model.glob("*.safetensors"))) > 3
    offload = tmp_path / "offload"
    full = profile_model(model, calib_docs, ProfileSettings(**SETTINGS))
    layerwise = profile_model(model, calib_docs, ProfileSettings(**SETTINGS, layerwise=True, offload_dir=offload))
    assert_same(layerwise, full)
    assert list(offload.iterdir()) == []  # the private activation folder is gone
    for name in full.domains:  # always-active experts 0 and 4 see every token
        tokens = full.domains[name].expert["tokens"]
        assert (tokens[:, [0, 4]] == full.domains[name].num_tokens).all()


def test_offload_requires_layerwise(tiny_models, calib_docs, tmp_path):
    from emo_prune.errors import CalibrationError

    with pytest.raises(CalibrationError, match="only applies with --layerwise"):
        profile_model(tiny_models("emo"), calib_docs, ProfileSettings(**SETTINGS, layerwise=False, offload_dir=tmp_path))
