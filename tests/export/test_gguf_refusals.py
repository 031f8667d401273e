"""What llama.cpp cannot compute exactly is refused, with one line saying why and what to do."""

from __future__ import annotations

import json
import shutil

import pytest

from emo_prune.arch import architecture_for_config
from emo_prune.errors import ExportError
from emo_prune.export import check_gguf_target, export_gguf, gguf_layout


def emo(**extra):
    config = {
        "model_type": "emo", "num_hidden_layers": 3, "hidden_size": 64, "intermediate_size": 32,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_experts": 8, "num_experts_per_tok": 3,
        "num_shared_experts": 1, "rms_norm_eps": 1e-6, "vocab_size": 512, "max_position_embeddings": 512,
    }  # fmt: skip
    return architecture_for_config({**config, **extra})


def family(model_type, **extra):
    config = {
        "model_type": model_type, "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 96,
        "moe_intermediate_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2, "num_experts": 8,
        "num_local_experts": 8, "num_experts_per_tok": 2, "shared_expert_intermediate_size": 64,
    }  # fmt: skip
    return architecture_for_config({**config, **extra})


# case -> (architecture, the words the one-line reason must contain); one comment per case
REFUSED = {
    # llama.cpp has one n_expert: a ragged (global-budget) build fails its tensor checks
    "ragged": (
        lambda: emo(num_experts_per_layer=[8, 6, 8]),
        "per-layer expert counts [8, 6, 8]: GGUF needs one count; select with --budget uniform",
    ),
    # EMO softmaxes several shared experts among themselves; llama.cpp adds each with weight 1
    "two_shared": (lambda: emo(num_shared_experts=2), "2 shared experts per layer"),
    # no always-on routed experts in any llama.cpp MoE graph
    "always_active": (lambda: emo(num_shared_experts=0, always_active_experts=[0]), "always-active experts [0]"),
    # deepseek's graph never renormalizes the picked weights
    "emo_norm_topk": (lambda: emo(norm_topk_prob=True), "norm_topk_prob=true: llama.cpp's deepseek graph does not renormalize"),
    # olmoe's graph never renormalizes either
    "olmoe_norm_topk": (
        lambda: family("olmoe", norm_topk_prob=True, intermediate_size=32),
        "llama.cpp's olmoe graph does not renormalize",
    ),
    # qwen3moe's graph always renormalizes: a model that does not is refused
    "qwen3_no_norm": (lambda: family("qwen3_moe", norm_topk_prob=False), "llama.cpp's qwen3moe graph always renormalizes"),
    # deepseek has leading dense layers only
    "dense_after_moe": (
        lambda: emo(num_experts_per_layer=[8, 0, 8], dense_intermediate_size=64),
        "dense layers [1] after the first MoE layer (0)",
    ),
    # qwen graphs have no dense layers at all
    "qwen_dense": (
        lambda: family("qwen3_moe", norm_topk_prob=True, mlp_only_layers=[0]),
        "dense MLP layers [0]: llama.cpp's qwen3moe graph has none",
    ),
    # llama.cpp's olmoe has k_norm [hidden]: no grouped-query attention
    "olmoe_gqa": (lambda: family("olmoe", intermediate_size=32), "2 key/value heads for 4 query heads"),
    # only plain RoPE is exported
    "rope_scaling": (lambda: emo(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}), "RoPE scaling 'yarn'"),
    # Mixtral's sliding window changes attention past the window
    "mixtral_swa": (lambda: family("mixtral", sliding_window=64, intermediate_size=32), "sliding-window attention"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusal_names_the_reason(case):
    make, words = REFUSED[case]
    with pytest.raises(ExportError) as info:
        gguf_layout(make())
    message = str(info.value)
    assert words in message
    assert "\n" not in message


def test_target_check_uses_the_plans_counts():
    arch = emo()
    check_gguf_target(arch.config, [4, 4, 4])
    with pytest.raises(ExportError, match=r"per-layer expert counts \[6, 4, 4\]"):
        check_gguf_target(arch.config, [6, 4, 4])


def test_unsupported_tokenizer_is_refused_before_writing(export_zoo, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(export_zoo["emo"], model)
    data = json.loads((model / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
    (model / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(ExportError, match="not byte-level BPE with GPT-2.s or cl100k.s split"):
        export_gguf(model, tmp_path / "out.gguf", dtype="f16")
    (model / "tokenizer.json").unlink()
    with pytest.raises(ExportError, match="has no tokenizer.json"):
        export_gguf(model, tmp_path / "out.gguf", dtype="f16")
    assert not [p for p in tmp_path.iterdir() if p.name != "model"]


def test_unknown_dtype(export_zoo, tmp_path):
    with pytest.raises(ExportError, match="q4_k_m"):
        export_gguf(export_zoo["emo"], tmp_path / "out.gguf", dtype="q3")


def test_k_quant_without_llama_cpp_names_the_extra(export_zoo, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_llama_cpp(name, *args, **kwargs):
        if name == "llama_cpp":
            raise ImportError("No module named 'llama_cpp'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_llama_cpp)
    with pytest.raises(ExportError, match=r"emo-prune\[edge\]"):
        export_gguf(export_zoo["emo"], tmp_path / "out.gguf", dtype="q4_k_m")
    assert not list(tmp_path.iterdir())


def test_cli_refusal_is_one_line(cli, tmp_path):
    from emo_prune.testing import write_tiny_model

    model = write_tiny_model(tmp_path / "ragged", "emo", layers=2, experts_per_layer=[8, 6])
    result = cli("export", model, "--dtype", "f16", "--out", tmp_path / "x.gguf")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "per-layer expert counts [8, 6]" in lines[0]


def test_cli_export_json(cli, export_zoo, tmp_path):
    result = cli("--json", "export", export_zoo["mixtral"], "--dtype", "q8_0", "--out", tmp_path / "m.gguf")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["arch"] == "llama" and data["dtype"] == "q8_0" and data["bytes"] == (tmp_path / "m.gguf").stat().st_size


def test_dtype_names_are_defined_once():
    from emo_prune.export import formats, quantize

    assert quantize.DTYPES == formats.DTYPES
    assert tuple(quantize.DIRECT) == formats.DIRECT_DTYPES and tuple(quantize.K_QUANTS) == formats.K_QUANT_DTYPES


def test_failure_mid_write_leaves_nothing(export_zoo, tmp_path, monkeypatch):
    """A crash after some tensors were written leaves neither a partial file nor its temporary."""
    from emo_prune.export import writer

    calls = []

    def failing(data, qtype):
        calls.append(1)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        return real(data, qtype)

    real = writer.encode
    monkeypatch.setattr(writer, "encode", failing)
    from emo_prune.errors import OutputError

    with pytest.raises(OutputError, match="No space left"):
        export_gguf(export_zoo["emo"], tmp_path / "out.gguf", dtype="f16")
    assert list(tmp_path.iterdir()) == []


def test_cli_export_of_a_builtin_model(cli, tmp_path):
    from emo_prune.models.builtin import resolve_model

    result = cli("--json", "export", "builtin:emo-small", "--dtype", "q8_0", "--out", tmp_path / "e.gguf")
    assert result.exit_code == 0, result.output
    config = json.loads((resolve_model("builtin:emo-small") / "config.json").read_text())
    # GGUF's `deepseek` graph counts the routed experts: the tail-shared one is written as *_shexp
    assert json.loads(result.output)["num_experts"] == config["num_experts"] - config["num_shared_experts"]


def test_side_files_that_point_outside_the_model_folder_are_refused(export_zoo, tmp_path):
    """A model folder is untrusted: a tokenizer.json symlinked elsewhere is not read."""
    from emo_prune.errors import UnsafePathError

    model = tmp_path / "model"
    shutil.copytree(export_zoo["emo"], model)
    outside = tmp_path / "elsewhere.json"
    (model / "tokenizer.json").rename(outside)
    (model / "tokenizer.json").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside"):
        export_gguf(model, tmp_path / "out.gguf", dtype="f16")
