"""Loading without doubling: tensor by tensor into the model's own parameters, same weights as transformers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM

from emo_prune.models.weights import load_pretrained
from emo_prune.testing import FAMILIES, write_tiny_model

# Peak RSS of a fresh process loading a per-expert checkpoint, over the RSS it had before loading.
CHILD = r"""
import json, sys
import torch
import transformers.models.auto.modeling_auto  # libraries load before the baseline: emo_prune imports them lazily
from emo_prune.models.weights import load_pretrained
from emo_prune.process.memory import peak_rss_bytes

before = peak_rss_bytes()
model = load_pretrained(sys.argv[1], torch.bfloat16)
print(json.dumps({"before": before, "peak": peak_rss_bytes()}))
"""


@pytest.mark.parametrize("family", FAMILIES)
def test_same_weights_and_logits_as_transformers(family, tiny_zoo):
    ours = load_pretrained(tiny_zoo[family], torch.float32)
    theirs = AutoModelForCausalLM.from_pretrained(tiny_zoo[family], dtype=torch.float32).eval()
    a, b = ours.state_dict(), theirs.state_dict()
    assert set(a) == set(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    ids = torch.randint(0, 500, (2, 9))
    with torch.no_grad():
        assert torch.equal(ours(input_ids=ids).logits, theirs(input_ids=ids).logits)


def test_sharded_per_expert_with_dense_layer(tmp_path):
    # experts of one layer spread over several shards, a dense layer, an always-active list
    model_dir = write_tiny_model(
        tmp_path / "m", "emo", layers=3, experts_per_layer=[6, 0, 4], always_active=[0], max_shard_size="20KB"
    )
    assert len(list(model_dir.glob("*.safetensors"))) > 3
    ours = load_pretrained(model_dir, torch.float32).state_dict()
    theirs = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).state_dict()
    assert all(torch.equal(ours[n], theirs[n]) for n in theirs) and set(ours) == set(theirs)


@pytest.mark.slow
def test_per_expert_load_peak_is_close_to_the_weights(tmp_path):
    # 2 layers x 32 experts of width 1024 at hidden 512, bf16: ~210 MB, nearly all of it expert tensors
    model_dir = write_tiny_model(
        tmp_path / "m", "emo", layers=2, hidden=512, heads=8, kv_heads=8, experts=32, expert_width=1024,
        top_k=4, dtype=torch.bfloat16, with_tokenizer=False,
    )  # fmt: skip
    size = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    assert size > 200e6
    done = subprocess.run([sys.executable, "-c", CHILD, str(model_dir)], capture_output=True, text=True, check=True)
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    ratio = (rss["peak"] - rss["before"]) / size
    assert ratio < 1.2, f"loading peaked at {ratio:.2f}x the checkpoint's bytes"  # transformers: 2.15x here


def test_large_emo_writer_streams_the_per_expert_layout(tmp_path):
    # the benchmark's checkpoints: AI2's per-expert names, several shards, loadable by both loaders
    from emo_prune.io import Checkpoint
    from emo_prune.testing.factory import write_large_emo

    model_dir = write_large_emo(tmp_path / "m", layers=2, hidden=64, experts=8, expert_width=32, max_shard_size="100KB")
    checkpoint = Checkpoint.open(model_dir)
    assert len(checkpoint.shards) > 1 and checkpoint.dtypes == {"BF16": checkpoint.total_bytes // 2}
    assert all(checkpoint.architecture.expert_storage(i, checkpoint.names) == "per_expert" for i in range(2))
    ours = load_pretrained(model_dir, torch.float32).state_dict()
    theirs = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).state_dict()
    assert set(ours) == set(theirs) and all(torch.equal(ours[n], theirs[n]) for n in theirs)
