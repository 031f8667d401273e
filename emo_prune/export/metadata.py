"""GGUF key/values: the architecture's hyperparameters and the build's provenance.

Named quantities that `gguf_archs.json` hparams refer to:
  expert_width  I, width of one routed expert        dense_width  width of a dense MLP layer
  shared_width  width of Qwen2-MoE's shared expert   shared_count tail-shared experts (EMO: 1, see tensors.py)
  dense_lead    leading dense MLP layers
Provenance goes under `emo_prune.*`: the tool version, the source model's identity, and the build's plan
(the extract manifest) when the folder is an emo-prune build.
"""

from __future__ import annotations

import json
from typing import Any

from gguf import GGUFWriter

from emo_prune.arch.layout import config_get
from emo_prune.export.check import GgufLayout
from emo_prune.extract.card import MANIFEST_FILE
from emo_prune.io import Checkpoint
from emo_prune.io.paths import contained_path
from emo_prune.version import __version__


def quantities(layout: GgufLayout) -> dict[str, int]:
    arch = layout.arch
    cfg = arch.config
    expert_width = arch.expert_width
    dense_key = arch.family.dense_layers.width_key if arch.family.dense_layers else None
    dense_width = config_get(cfg, dense_key) if dense_key else None
    return {
        "expert_width": expert_width,
        "dense_width": int(dense_width or config_get(cfg, "intermediate_size") or expert_width),
        "shared_width": int(config_get(cfg, "shared_expert_intermediate_size") or 0),
        # EMO with no shared expert still gets one (of zeros): llama.cpp's deepseek graph always adds it
        "shared_count": max(layout.num_shared, 1) if layout.mapping.shared_expert == "tail" else layout.num_shared,
        "dense_lead": layout.dense_lead,
    }


def write_hparams(writer: GGUFWriter, layout: GgufLayout, vocab_size: int) -> None:
    arch, mapping = layout.arch, layout.mapping
    cfg = arch.config
    heads = int(config_get(cfg, "num_attention_heads"))
    kv_heads = int(config_get(cfg, "num_key_value_heads") or heads)
    rope = config_get(cfg, "rope_parameters") or {}
    theta = float(rope.get("rope_theta") or config_get(cfg, "rope_theta") or 10000.0)
    writer.add_context_length(int(config_get(cfg, "max_position_embeddings")))
    writer.add_embedding_length(arch.hidden_size)
    writer.add_block_count(arch.num_layers)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(layout.head_dim)
    writer.add_value_length(layout.head_dim)
    writer.add_rope_dimension_count(layout.head_dim)
    writer.add_rope_freq_base(theta)
    writer.add_layer_norm_rms_eps(float(config_get(cfg, "rms_norm_eps")))
    writer.add_expert_count(layout.num_experts)
    writer.add_expert_used_count(layout.top_k)
    writer.add_vocab_size(vocab_size)
    named = quantities(layout)
    for key, value in mapping.hparams.items():
        full = f"{mapping.arch}.{key}"
        if isinstance(value, str):
            writer.add_uint32(full, int(named[value]))
        else:
            writer.add_float32(full, float(value))


def provenance(checkpoint: Checkpoint) -> dict[str, Any]:
    """What a GGUF file says about where it came from (kept small: no per-shard digests)."""
    from emo_prune.io import model_identity

    identity = model_identity(checkpoint)
    found: dict[str, Any] = {"tool_version": __version__, "source": {k: identity[k] for k in ("path", "model_type", "digest")}}
    manifest = contained_path(checkpoint.path, MANIFEST_FILE, "build manifest")
    if manifest.is_file():
        try:
            found["build"] = json.loads(manifest.read_text())
        except (OSError, ValueError):
            found["build"] = None
    return found


def write_provenance(writer: GGUFWriter, checkpoint: Checkpoint, name: str) -> None:
    facts = provenance(checkpoint)
    writer.add_name(name)
    writer.add_string("emo_prune.version", facts["tool_version"])
    writer.add_string("emo_prune.source", json.dumps(facts["source"], sort_keys=True))
    if facts.get("build") is not None:
        writer.add_string("emo_prune.build", json.dumps(facts["build"], sort_keys=True))
