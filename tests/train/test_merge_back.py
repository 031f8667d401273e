"""`merge-back`: a fine-tuned build's experts go back into the full model at their original ids. With
alpha 1 and the router rows and shared experts taken too, the merged model with the dropped experts'
router logits at -inf IS the fine-tuned build (`verify` checks it, as it checks a build against its source)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from finetune_helpers import KEPT, SMALL, params

from emo_prune.errors import TrainingError
from emo_prune.extract import extract
from emo_prune.select import Plan
from emo_prune.train.finetune import FinetuneSettings, finetune
from emo_prune.train.merge_back import MergeOptions, merge_back
from emo_prune.verify import verify


@pytest.fixture(scope="module")
def tuned(build, data, tmp_path_factory) -> Path:
    """The build fine-tuned in mode experts+shared+router (attention, norms, embeddings frozen)."""
    out = tmp_path_factory.mktemp("tuned") / "tuned"
    finetune(build, [str(data["text"])], out, FinetuneSettings(**SMALL, train="experts+shared+router"))
    return out


def digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.glob("*.safetensors")))).hexdigest()


def test_merged_model_masked_equals_the_finetuned_build(full, tuned, tmp_path):
    merged = tmp_path / "merged"
    merge_back(full, tuned, merged, MergeOptions(router=True, shared=True), max_shard_size="100kB")
    report = verify(merged, tuned, num_prompts=4)
    assert report.passed and report.max_abs_diff <= 1e-4, report.to_dict()
    assert not verify(full, tuned, num_prompts=4).passed  # the fine-tuning did change the build
    again = tmp_path / "again"
    merge_back(full, tuned, again, MergeOptions(router=True, shared=True), max_shard_size="100kB")
    assert digest(merged) == digest(again) and len(list(merged.glob("*.safetensors"))) > 1  # deterministic, sharded


def test_default_merge_takes_routed_experts_only(full, tuned, tmp_path):
    merged = tmp_path / "merged"
    merge_back(full, tuned, merged)
    before, small, after = params(full), params(tuned), params(merged)
    for name in before:
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            layer = int(name.split(".")[2])
            for e in range(8):
                want = small[name][KEPT[layer].index(e)] if e in KEPT[layer] and e != 7 else before[name][e]
                assert torch.equal(after[name][e], want), (name, e)
        else:
            assert torch.equal(after[name], before[name]), name  # router, shared expert, the rest: FULL's bytes


def test_alpha_averages(full, tuned, tmp_path):
    merged = tmp_path / "half"
    merge_back(full, tuned, merged, MergeOptions(alpha=0.5))
    before, small, after = params(full), params(tuned), params(merged)
    name = "model.layers.1.mlp.experts.down_proj"
    assert torch.allclose(after[name][3], 0.5 * before[name][3] + 0.5 * small[name][KEPT[1].index(3)], atol=1e-6)


def test_a_build_of_another_model_is_refused(full, tiny, tmp_path):
    other = tiny("emo", seed=1)
    extract(other, Plan(KEPT), tmp_path / "other-build")
    with pytest.raises(TrainingError, match="was not cut from"):
        merge_back(full, tmp_path / "other-build", tmp_path / "merged")
    with pytest.raises(TrainingError, match="has no emo_prune.json"):
        merge_back(full, other, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
