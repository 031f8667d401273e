"""The GGUF file read back (gguf.GGUFReader) and run by a plain torch forward equals transformers.

The reference follows llama.cpp's graph of the file's architecture (emo_prune/export/reference.py), so
this checks the mapping (names, permutations, router rows, shared expert, hyperparameters) without
llama.cpp. tolerance per dtype: f32 is the exactness claim; the others only show the file is sane.
"""

from __future__ import annotations

import json

import pytest
import torch
from gguf import GGUFReader
from gguf_cases import EXPORTABLE, hf_logits

from emo_prune.export import export_gguf
from emo_prune.export.reference import reference_logits

IDS = [5, 17, 200, 33, 2, 99, 411, 7, 64, 300, 12, 128]


@pytest.mark.parametrize("case", sorted(EXPORTABLE))
def test_f32_export_equals_transformers(case, export_zoo, tmp_path):
    result = export_gguf(export_zoo[case], tmp_path / f"{case}.gguf", dtype="f32")
    expected = hf_logits(export_zoo[case], IDS)
    got = reference_logits(result.path, IDS)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-4
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


# dtype -> largest |logit diff| on a random tiny model (logits ~0.1-1): a broken mapping gives ~1
TOLERANCE = {"f16": 5e-3, "bf16": 3e-2, "q8_0": 3e-2}


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
def test_reduced_precision_exports_stay_close(dtype, export_zoo, tmp_path):
    result = export_gguf(export_zoo["emo"], tmp_path / f"emo-{dtype}.gguf", dtype=dtype)
    diff = (reference_logits(result.path, IDS) - hf_logits(export_zoo["emo"], IDS)).abs().max().item()
    assert diff < TOLERANCE[dtype]


def test_router_and_norms_stay_f32_in_q8_0(export_zoo, tmp_path):
    result = export_gguf(export_zoo["emo"], tmp_path / "emo.gguf", dtype="q8_0")
    types = {t.name: t.tensor_type.name for t in GGUFReader(result.path).tensors}
    assert types["blk.0.ffn_gate_inp.weight"] == "F32"
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert types["blk.0.ffn_gate_exps.weight"] == "Q8_0"


def test_emo_mapping_metadata_and_provenance(export_zoo, tmp_path):
    """EMO's tail-shared expert leaves the pool: expert_count E-1, expert_used_count k-1, one shexp."""
    result = export_gguf(export_zoo["emo"], tmp_path / "emo.gguf", dtype="f32")
    reader = GGUFReader(result.path)
    fields = {name: f.contents() for name, f in reader.fields.items()}
    assert fields["general.architecture"] == "deepseek"
    assert fields["deepseek.expert_count"] == 7 and fields["deepseek.expert_used_count"] == 1
    assert fields["deepseek.expert_shared_count"] == 1
    assert fields["deepseek.expert_weights_scale"] == 1.0
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    source = json.loads(fields["emo_prune.source"])
    assert source["model_type"] == "emo" and len(source["digest"]) == 64
    shapes = {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors}
    assert shapes["blk.0.ffn_gate_exps.weight"] == (64, 32, 7)  # ggml order: [H, I, E]
    assert shapes["blk.0.ffn_gate_inp.weight"] == (64, 7)
    assert shapes["blk.0.ffn_down_shexp.weight"] == (32, 64)


def test_pruned_build_exports_with_its_plan(export_zoo, tmp_path):
    """An `extract` build carries its plan into the GGUF metadata and stays exact."""
    from emo_prune.extract import extract
    from emo_prune.select import Plan

    keep = [[0, 2, 5, 7], [1, 3, 4, 7]]  # 3 routed + the shared expert (id 7) per layer
    build = tmp_path / "build"
    extract(export_zoo["emo"], Plan(experts_kept_per_layer=keep, keep="4"), build)
    result = export_gguf(build, tmp_path / "build.gguf", dtype="f32")
    assert result.num_experts == 3 and result.num_shared == 1
    fields = {name: f.contents() for name, f in GGUFReader(result.path).fields.items()}
    assert json.loads(fields["emo_prune.build"])["experts_kept_per_layer"] == keep
    diff = (reference_logits(result.path, IDS) - hf_logits(build, IDS)).abs().max().item()
    assert diff < 1e-4


def test_write_is_atomic_and_refuses_existing_file(export_zoo, tmp_path):
    from emo_prune.errors import OutputError

    target = tmp_path / "out.gguf"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="--overwrite"):
        export_gguf(export_zoo["emo"], target, dtype="f16")
    assert target.read_bytes() == b"keep me"
    with pytest.raises(OutputError, match=".gguf"):
        export_gguf(export_zoo["emo"], tmp_path / "out.bin", dtype="f16")
    with pytest.raises(OutputError, match="inside the model folder"):
        export_gguf(export_zoo["emo"], export_zoo["emo"] / "x.gguf", dtype="f16")
    assert [p.name for p in tmp_path.iterdir()] == ["out.gguf"]
