"""Pruned checkpoints equal the masked original: every family and layout, shared / always-active experts,
per-layer budgets, dense layers, K == top-k; EMO outputs also match a plain AI2-style implementation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from reference_emo import reference_logits
from transformers import AutoModelForCausalLM

from emo_prune.errors import VerificationError
from emo_prune.extract import extract
from emo_prune.io import Checkpoint
from emo_prune.select import Plan, SelectOptions, select_experts
from emo_prune.testing import FAMILIES
from emo_prune.verify import verify

IDS = [5, 17, 200, 33, 2, 411, 90, 64, 7, 300]  # one sequence of token ids, vocab 512


def random_plan(model, keep: str, seed: int = 0) -> Plan:
    return select_experts(Checkpoint.open(model).architecture, SelectOptions(keep=keep, method="random", seed=seed))


@pytest.mark.parametrize("storage", ["per_expert", "fused"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_and_layout_equals_masked_original(tiny, tmp_path, family, storage):
    model = tiny(family, storage=storage)
    plan = random_plan(model, "0.5")
    result = extract(model, plan, tmp_path / "out")
    assert result.kept_counts == [4, 4]
    report = verify(model, tmp_path / "out", num_prompts=3)
    assert report.passed and report.max_abs_diff <= 1e-4, report.to_dict()
    if family == "emo" and storage == "per_expert":  # AI2's key names: their style of code reads it too
        assert_reference_agrees(model, tmp_path / "out", plan.experts_kept_per_layer)
    names = Checkpoint.open(tmp_path / "out").names
    if storage == "fused":
        assert not any(".experts.4." in n for n in names)
    else:  # renumbered 0..3, nothing above
        assert any(".experts.3." in n for n in names) and not any(".experts.4." in n for n in names)


def test_verify_catches_a_wrong_plan(tiny, tmp_path):
    model = tiny("olmoe")
    extract(model, Plan([[0, 1, 2, 3], [4, 5, 6, 7]]), tmp_path / "out")
    manifest = tmp_path / "out" / "emo_prune.json"
    data = json.loads(manifest.read_text())
    data["experts_kept_per_layer"] = [[4, 5, 6, 7], [0, 1, 2, 3]]  # same counts, other experts
    manifest.write_text(json.dumps(data))
    report = verify(model, tmp_path / "out", num_prompts=2)
    assert not report.passed
    with pytest.raises(VerificationError, match="differs from the masked original"):
        report.raise_for_failure()


def assert_reference_agrees(original, pruned, kept):
    """AI2-style plain code on the pruned folder == our native model == plain code on the masked original."""
    ours = AutoModelForCausalLM.from_pretrained(pruned, dtype=torch.float32)
    with torch.no_grad():
        native = ours(input_ids=torch.tensor([IDS])).logits[0]
    plain = reference_logits(pruned, IDS)
    layouts = Checkpoint.open(original).architecture.layouts
    dropped = {i: set(range(layouts[i].num_experts)) - set(ids) for i, ids in enumerate(kept) if ids}
    masked = reference_logits(original, IDS, expert_mask=dropped)
    assert (plain - native).abs().max() <= 1e-4
    assert (plain - masked).abs().max() <= 1e-4


def test_emo_per_layer_budget(tiny, tmp_path):
    model = tiny("emo", layers=3)
    kept = [[0, 1, 2, 7], [3, 7], [0, 1, 2, 3, 4, 5, 7]]
    result = extract(model, Plan(kept), tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["num_experts_per_layer"] == [4, 2, 7] and config["num_experts"] == 7
    assert config["num_experts_per_tok"] == 2 and config["num_shared_experts"] == 1
    assert result.config_changes.keys() == {"num_experts", "num_experts_per_layer"}
    assert verify(model, tmp_path / "out", num_prompts=3).passed
    assert_reference_agrees(model, tmp_path / "out", kept)


def test_emo_dense_layer_and_source_per_layer_counts(tiny, tmp_path):
    model = tiny("emo", layers=3, experts_per_layer=[8, 0, 6])
    kept = [[0, 3, 7], None, [1, 2, 5]]
    extract(model, Plan(kept), tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["num_experts_per_layer"] == [3, 0, 3] and config["num_experts"] == 3
    assert verify(model, tmp_path / "out", num_prompts=3).passed
    assert_reference_agrees(model, tmp_path / "out", kept)


@pytest.mark.parametrize(
    "kept, key, ids",
    [
        ([[0, 2, 5, 6], [1, 2, 4, 5]], "always_active_experts", [2, 3]),  # uniform: the global list stays valid
        ([[0, 2, 5, 6], [1, 2, 3, 4, 5]], "always_active_experts_per_layer", [[2, 3], [3, 4]]),  # counts differ
    ],
)
def test_emo_always_active_remapped(tiny, tmp_path, kept, key, ids):
    model = tiny("emo", shared=0, always_active=[2, 5], top_k=3)
    extract(model, Plan(kept), tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config[key] == ids
    assert verify(model, tmp_path / "out", num_prompts=3).passed
    assert_reference_agrees(model, tmp_path / "out", kept)


@pytest.mark.parametrize("family", ["emo", "olmoe", "qwen3_moe"])
def test_keep_exactly_top_k(tiny, tmp_path, family):
    model = tiny(family, norm_topk_prob=(family == "qwen3_moe"))
    extract(model, random_plan(model, "2", seed=3), tmp_path / "out")
    assert verify(model, tmp_path / "out", num_prompts=3).passed


def test_sharded_output_and_dtype_conversion(tiny, tmp_path):
    model = tiny("mixtral")
    result = extract(model, random_plan(model, "0.5"), tmp_path / "out", max_shard_size="40kB", dtype="bfloat16")
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert len(result.files) > 3 and sorted(set(index["weight_map"].values())) == result.files
    assert all(f == f"model-{i + 1:05d}-of-{len(result.files):05d}.safetensors" for i, f in enumerate(result.files))
    pruned = Checkpoint.open(tmp_path / "out")
    assert set(pruned.dtypes) == {"BF16"}
    assert all(shard.file_size - shard.data_start <= 40_000 or len(shard.tensors) == 1 for shard in pruned.shards.values())
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"
    from safetensors.torch import load_file

    src = {}
    for shard in sorted(set(Checkpoint.open(model).weight_map.values())):
        src.update(load_file(str(model / shard)))
    out = {}
    for f in result.files:
        out.update(load_file(str(tmp_path / "out" / f)))
    assert torch.equal(out["model.embed_tokens.weight"], src["model.embed_tokens.weight"].to(torch.bfloat16))


def test_stock_families_load_without_emo_prune(tiny, tmp_path):
    folders = []
    for family in ("olmoe", "mixtral", "qwen2_moe", "qwen3_moe"):
        model = tiny(family)
        shutil.copytree(model, tmp_path / "src" / family)  # copies: the zoo stays read-only
        extract(tmp_path / "src" / family, random_plan(model, "0.5"), tmp_path / family)
        folders.append(str(tmp_path / family))
    script = (
        "import sys; from transformers import AutoModelForCausalLM\n"
        "for path in sys.argv[1:]:\n"
        "    m = AutoModelForCausalLM.from_pretrained(path)\n"
        "    assert m.config.num_experts_per_tok == 2 and m.model.layers[0].mlp.experts.gate_up_proj.shape[0] == 4, path\n"
        "assert 'emo_prune' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *folders], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
