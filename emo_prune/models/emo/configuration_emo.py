"""EmoConfig: the config of AI2's EMO checkpoints (`model_type: "emo"`), for transformers 5.

Defaults are AI2's own class defaults (hidden 4096, 7 experts, top-5, no shared expert), NOT the
released model's values: a config.json that omits a key must mean here what it means to AI2's code.
emo-prune itself never relies on them (the release config.json spells every field out). Fields
beyond OLMoE, all optional:
  num_shared_experts             the LAST n experts of every MoE layer are shared (always on, own softmax)
  num_experts_per_layer          one count per layer; 0 = dense MLP layer of width dense_intermediate_size
  num_shared_experts_per_layer   shared count per layer (default min(num_shared_experts, layer count))
  always_active_experts(_per_layer)  explicit always-on expert ids (take priority over shared experts)
  dense_intermediate_size, dense_mlp_bias
Legacy `rope_theta` / `rope_scaling` keys of AI2's 4.57-era config.json are read into `rope_parameters`.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig
from transformers.modeling_rope_utils import RopeParameters

from emo_prune.arch.layout import LayerLayout


@strict
class EmoConfig(PreTrainedConfig):
    model_type = "emo"
    attribute_map = {"num_local_experts": "num_experts"}
    default_theta = 500000.0

    vocab_size: int = 100352
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 4096
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    use_cache: bool = True
    pad_token_id: int | None = 100277
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = 100257
    tie_word_embeddings: bool = False
    rope_parameters: RopeParameters | dict | None = None
    attention_bias: bool = False
    attention_dropout: float | int = 0.0
    num_experts_per_tok: int = 5
    num_experts: int = 7
    num_shared_experts: int = 0
    num_experts_per_layer: list[int] | None = None
    num_shared_experts_per_layer: list[int] | None = None
    always_active_experts: list[int] | None = None
    always_active_experts_per_layer: list[list[int] | None] | None = None
    dense_intermediate_size: int | None = None
    dense_mlp_bias: bool = False
    norm_topk_prob: bool = False
    output_router_logits: bool = False
    router_aux_loss_coef: float = 0.01
    router_z_loss_coef: float = 0.0

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        super().__post_init__(**kwargs)

    def layer_layouts(self) -> list[LayerLayout]:
        """Per-layer expert counts, shared/always-active ids and top-k (see emo_prune.arch.layout)."""
        from emo_prune.arch.layout import compute_layouts
        from emo_prune.arch.registry import family_for_model_type

        return compute_layouts(family_for_model_type("emo"), self)


__all__ = ["EmoConfig"]
