"""`finetune` end to end on a tiny EMO build: a normal build comes out (stock transformers loads it with its
pruned counts, also after --lora), its manifest keeps the plan and source and records the run; expert-only
training of the full model leaves every frozen tensor and every non-plan expert row byte-identical."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from finetune_helpers import KEPT, SMALL, params
from safetensors import safe_open
from transformers import AutoModelForCausalLM

import emo_prune  # noqa: F401  (registers EMO with transformers)
from emo_prune.io import Checkpoint
from emo_prune.select import Plan
from emo_prune.train.finetune import FinetuneSettings, finetune, work_folder


def saved_names(folder: Path) -> list[str]:
    return list(Checkpoint.open(folder).names)


def test_a_finetuned_build_is_a_normal_build(build, data, tmp_path):
    out = tmp_path / "ft"
    result = finetune(build, [str(data["pairs"]), str(data["text"])], out, FinetuneSettings(**SMALL))
    assert result.steps == 8 and len(result.losses) == 8 and all(torch.isfinite(torch.tensor(e["loss"])) for e in result.losses)
    model = AutoModelForCausalLM.from_pretrained(out)  # stock transformers, `import emo_prune` above
    assert model.config.to_dict()["num_experts"] == 4 and model.model.layers[0].mlp.experts.gate_up_proj.shape[0] == 4
    assert json.loads((out / "config.json").read_text()) == json.loads((build / "config.json").read_text())
    manifest = json.loads((out / "emo_prune.json").read_text())
    assert Plan.load(out).experts_kept_per_layer == KEPT
    assert Plan.load(out).source_model == Plan.load(build).source_model  # verify / merge-back still know the source
    record = manifest["finetune"]
    assert record["data_digest"] == result.data_digest and len(record["data_digest"]) == 64
    assert record["settings"]["lr"] == 1e-2 and record["losses"] == result.losses and record["gradient_accumulation"] == 1
    before, after = params(build), params(out)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    assert not work_folder(out).exists()  # checkpoints deleted after success
    card = (out / "README.md").read_text()
    assert "fine-tuned" in card and result.data_digest in card and "import emo_prune" in card


def test_lora_build_reloads_with_its_pruned_counts(build, data, tmp_path):
    out = tmp_path / "lora"
    settings = FinetuneSettings(**SMALL, train="experts+shared", lora=4)
    finetune(build, [str(data["pairs"])], out, settings)
    assert not any("lora" in name for name in saved_names(out))  # merged into the weights, no adapter left
    config = json.loads((out / "config.json").read_text())
    assert config["num_experts"] == 4  # the YOLO-Master bug: a LoRA save must not restore the full count
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.model.layers[1].mlp.experts.down_proj.shape[0] == 4 and model.model.layers[1].mlp.gate.weight.shape[0] == 4
    before, after = params(build), params(out)
    experts = [n for n in before if ".experts." in n]
    assert experts and all(not torch.equal(before[n], after[n]) for n in experts)
    assert all(torch.equal(before[n], after[n]) for n in before if n not in experts)


def test_expert_only_training_of_the_full_model_keeps_everything_else_byte_identical(full, data, tmp_path):
    plan = Plan([[1, 4, 6, 7], [0, 2, 3, 7]]).save(tmp_path / "plan.json")
    out = tmp_path / "experts"
    settings = FinetuneSettings(**SMALL, train="experts", experts_of=str(plan), router=True)
    finetune(full, [str(data["text"])], out, settings)
    before, after = params(full), params(out)
    kept = Plan.load(plan).experts_kept_per_layer
    for name in before:
        if name.endswith(("experts.gate_up_proj", "experts.down_proj", "mlp.gate.weight")):
            layer = int(name.split(".")[2])
            trained = [e for e in kept[layer] if e != 7]  # the shared expert is frozen in mode `experts`
            for row in range(before[name].shape[0]):
                same = torch.equal(before[name][row], after[name][row])
                assert same == (row not in trained), (name, row)
        else:
            assert torch.equal(before[name], after[name]), name  # frozen: byte-identical
    # and on disk, every tensor the run did not train holds the source's bytes
    with safe_open(str(next(out.glob("*.safetensors"))), "pt") as f:
        assert torch.equal(f.get_tensor("model.embed_tokens.weight"), before["model.embed_tokens.weight"])


def test_refusals_write_nothing(build, data, tiny, tmp_path):
    from emo_prune.errors import CalibrationError, OutputError, TrainingError

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OutputError, match="already exists"):
        finetune(build, [str(data["text"])], out, FinetuneSettings(**SMALL))
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"text": "   "}) + "\n")
    with pytest.raises(CalibrationError):
        finetune(build, [str(empty)], tmp_path / "b", FinetuneSettings(**SMALL))
    two_shared = tiny("emo", shared=2)  # experts 6 and 7 shared: a plan of them alone has no routed expert
    plan = Plan([[6, 7], [6, 7]]).save(tmp_path / "shared-only.json")
    with pytest.raises(TrainingError, match="nothing to train"):
        settings = FinetuneSettings(**SMALL, train="experts", experts_of=str(plan))
        finetune(two_shared, [str(data["text"])], tmp_path / "c", settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.jsonl", "out", "shared-only.json"]
