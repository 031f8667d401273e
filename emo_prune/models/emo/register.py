"""Make `model_type: "emo"` a first-class transformers model, with no Python files in the model folder.

Registers the config and model classes with the Auto classes and the per-expert <-> fused weight
conversion: on load, `mlp.experts.{e}.gate_proj/up_proj.weight` [I, H] stack into
`mlp.experts.gate_up_proj` [E, 2I, H] and `down_proj.weight` into `mlp.experts.down_proj` [E, H, I];
`save_pretrained` reverses it, so saved folders keep AI2's key names. Idempotent.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import Concatenate, MergeModulelist, WeightConverter

from emo_prune.models.emo.configuration_emo import EmoConfig
from emo_prune.models.emo.modeling_emo import EmoForCausalLM, EmoModel

_registered = False


def _expert_conversions() -> list[WeightConverter]:
    return [
        WeightConverter(
            source_patterns=["mlp.experts.*.gate_proj.weight", "mlp.experts.*.up_proj.weight"],
            target_patterns="mlp.experts.gate_up_proj",
            operations=[MergeModulelist(dim=0), Concatenate(dim=1)],
        ),
        WeightConverter(
            source_patterns="mlp.experts.*.down_proj.weight",
            target_patterns="mlp.experts.down_proj",
            operations=[MergeModulelist(dim=0)],
        ),
    ]


def register_emo() -> None:
    global _registered
    if _registered:
        return
    AutoConfig.register("emo", EmoConfig, exist_ok=True)
    AutoModel.register(EmoConfig, EmoModel, exist_ok=True)
    AutoModelForCausalLM.register(EmoConfig, EmoForCausalLM, exist_ok=True)
    register_checkpoint_conversion_mapping("emo", _expert_conversions(), overwrite=True)
    _registered = True
