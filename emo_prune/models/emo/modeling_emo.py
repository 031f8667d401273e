"""Native EMO model for transformers 5 (no `trust_remote_code`).

Shapes: B batch, S sequence, T = B*S flattened tokens, H hidden, I expert width, E experts in a
layer (shared / always-active included), k experts per token, V vocab, D head dim.

Forward (docs/emo-checkpoint.md): pre-norm decoder layers without QK-norm,
    h   = x + Attn(RMSNorm_a(x))
    out = h + MoE(RMSNorm_f(h))        (or a dense MLP where the layer's expert count is 0)
then the final RMSNorm and an untied lm_head. Routing is `emo_prune.routing.route` (shared tail with
its own softmax, always-active experts, norm_topk_prob), so every path equals that reference.

On disk, experts are one tensor per expert and projection, exactly as AI2 releases them
(`model.layers.{i}.mlp.experts.{e}.gate_proj.weight` [I, H]); in memory they are fused
`gate_up_proj` [E, 2I, H] / `down_proj` [E, H, I] so transformers' experts implementations
(`experts_implementation="eager" | "grouped_mm" | "batched_mm"`, and emo-prune's own) run them. The
conversion between both is registered with transformers in `emo_prune.models.emo.register`, so
`save_pretrained` writes AI2's key names back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.integrations import use_experts_implementation
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import MoeCausalLMOutputWithPast, MoeModelOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel, slice_logits_to_keep
from transformers.models.llama.modeling_llama import (
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
    eager_attention_forward,
)
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from emo_prune.arch.layout import LayerLayout
from emo_prune.models.emo.configuration_emo import EmoConfig
from emo_prune.routing import RoutingSpec, balance_loss, route

# transformers 5.24 renamed the KV cache (argument and output field) `past_key_values` -> `cache`;
# the model takes either name and fills the field this transformers has
CACHE_FIELD = "cache" if "cache" in MoeModelOutputWithPast.__dataclass_fields__ else "past_key_values"


class EmoRMSNorm(LlamaRMSNorm):
    """RMSNorm in fp32, cast back to the input dtype, then scaled (as AI2's)."""


class EmoRotaryEmbedding(LlamaRotaryEmbedding):
    """Default RoPE (rope_theta 500000 in the release); rope_scaling types come from transformers."""


class EmoAttention(nn.Module):
    """Causal multi-head attention with GQA, RoPE and no QK-norm."""

    def __init__(self, config: EmoConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, config.num_attention_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(config.num_attention_heads * self.head_dim, config.hidden_size, bias=bias)

    def forward(
        self,
        hidden_states: torch.Tensor,  # [B, S, H]
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None,
        cache: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)  # [B, heads, S, D]
        key = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)  # [B, kv_heads, S, D]
        value = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        cos, sin = position_embeddings
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()  # [B, S, heads*D]
        return self.o_proj(attn_output), attn_weights


class EmoMLP(nn.Module):
    """The dense MLP of a layer whose expert count is 0 (`dense_intermediate_size`, bias if `dense_mlp_bias`)."""

    def __init__(self, config: EmoConfig):
        super().__init__()
        width = config.dense_intermediate_size or config.intermediate_size
        bias = config.dense_mlp_bias
        self.gate_proj = nn.Linear(config.hidden_size, width, bias=bias)
        self.up_proj = nn.Linear(config.hidden_size, width, bias=bias)
        self.down_proj = nn.Linear(width, config.hidden_size, bias=bias)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


@use_experts_implementation
class EmoExperts(nn.Module):
    """The E experts of one layer as two stacked tensors; `forward` is the eager reference loop."""

    def __init__(self, config: EmoConfig, num_experts: int):
        super().__init__()
        self.num_experts = num_experts
        self.hidden_dim = config.hidden_size
        self.intermediate_dim = config.intermediate_size
        self.gate_up_proj = nn.Parameter(torch.empty(num_experts, 2 * self.intermediate_dim, self.hidden_dim))
        self.down_proj = nn.Parameter(torch.empty(num_experts, self.hidden_dim, self.intermediate_dim))
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(
        self,
        hidden_states: torch.Tensor,  # [T, H]
        top_k_index: torch.Tensor,  # [T, k]
        top_k_weights: torch.Tensor,  # [T, k]
    ) -> torch.Tensor:
        output = torch.zeros_like(hidden_states)  # [T, H]
        for expert in torch.unique(top_k_index).tolist():
            token_idx, slot = torch.where(top_k_index == expert)  # tokens routed to `expert`, and in which of their k slots
            x = hidden_states[token_idx]  # [t, H]
            gate, up = F.linear(x, self.gate_up_proj[expert]).chunk(2, dim=-1)  # [t, I] each
            y = F.linear(self.act_fn(gate) * up, self.down_proj[expert])  # [t, H]
            y = y * top_k_weights[token_idx, slot, None]
            output.index_add_(0, token_idx, y.to(output.dtype))
        return output


class EmoTopKRouter(nn.Module):
    """Router of one MoE layer: logits in the model dtype, routing math in fp32 (see emo_prune.routing)."""

    def __init__(self, config: EmoConfig, layout: LayerLayout):
        super().__init__()
        self.config = config
        self.spec: RoutingSpec = layout.routing_spec()
        self.weight = nn.Parameter(torch.zeros(layout.num_experts, config.hidden_size))  # [E, H]

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = F.linear(hidden_states, self.weight)  # [T, E]
        if self.config._experts_implementation == "emo_triton" and logits.is_cuda:
            from emo_prune.runtime import dispatch_route

            weights, ids = dispatch_route(logits, self.spec)
        else:
            weights, ids = route(logits, self.spec)  # [T, k] fp32, [T, k]
        return logits, weights.to(hidden_states.dtype), ids


class EmoSparseMoeBlock(nn.Module):
    def __init__(self, config: EmoConfig, layout: LayerLayout):
        super().__init__()
        self.layout = layout
        self.gate = EmoTopKRouter(config, layout)
        self.experts = EmoExperts(config, layout.num_experts)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch_size, seq_len, hidden_dim = hidden_states.shape
        flat = hidden_states.reshape(-1, hidden_dim)  # [T, H]
        _, weights, ids = self.gate(flat)
        return self.experts(flat, ids, weights).reshape(batch_size, seq_len, hidden_dim)


class EmoDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: EmoConfig, layout: LayerLayout):
        super().__init__()
        self.self_attn = EmoAttention(config, layout.index)
        self.mlp = EmoMLP(config) if layout.is_dense else EmoSparseMoeBlock(config, layout)
        self.pre_attention_layernorm = EmoRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.pre_feedforward_layernorm = EmoRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,  # [B, S, H]
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = False,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        attn_out, _ = self.self_attn(
            hidden_states=self.pre_attention_layernorm(hidden_states),
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = hidden_states + attn_out
        return hidden_states + self.mlp(self.pre_feedforward_layernorm(hidden_states))


class EmoPreTrainedModel(PreTrainedModel):
    config: EmoConfig
    config_class = EmoConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["EmoDecoderLayer"]
    _skip_keys_device_placement = [CACHE_FIELD]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = False  # per-layer expert counts and data-dependent routing
    _can_record_outputs = {
        "router_logits": OutputRecorder(EmoTopKRouter, index=0),
        "hidden_states": EmoDecoderLayer,
        "attentions": EmoAttention,
    }

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, EmoExperts):
            init.normal_(module.gate_up_proj, mean=0.0, std=std)
            init.normal_(module.down_proj, mean=0.0, std=std)
        elif isinstance(module, EmoTopKRouter):
            init.normal_(module.weight, mean=0.0, std=std)


class EmoModel(EmoPreTrainedModel):
    def __init__(self, config: EmoConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.layouts = config.layer_layouts()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([EmoDecoderLayer(config, layout) for layout in self.layouts])
        self.norm = EmoRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = EmoRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()

    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,  # [B, S]
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        past_key_values: Cache | None = None,  # the name before transformers 5.24
        **kwargs: Unpack[TransformersKwargs],
    ) -> MoeModelOutputWithPast:
        cache = cache if cache is not None else past_key_values
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # [B, S, H]
        if position_ids is None:
            past_seen = cache.get_seq_length() if cache is not None else 0
            position_ids = (torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen).unsqueeze(0)
        # the cache goes by position: its keyword is `past_key_values` before transformers 5.24, `cache` after
        causal_mask = create_causal_mask(self.config, inputs_embeds, attention_mask, cache, position_ids=position_ids)
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        for layer in self.layers[: self.config.num_hidden_layers]:
            hidden_states = layer(
                hidden_states,
                position_embeddings=position_embeddings,
                attention_mask=causal_mask,
                position_ids=position_ids,
                cache=cache,
                use_cache=use_cache,
                **kwargs,
            )
        return MoeModelOutputWithPast(last_hidden_state=self.norm(hidden_states), **{CACHE_FIELD: cache})


def load_balancing_loss(
    router_logits: tuple[torch.Tensor, ...],  # one [T, E_l] per MoE layer, in layer order
    layouts: list[LayerLayout],
    attention_mask: torch.Tensor | None = None,  # [B, S]
) -> torch.Tensor:
    """Switch-style load balancing over the routed experts of each MoE layer, averaged over layers.

    Per layer: E_r * sum_e f_e * p_e, where f_e is the fraction of routed picks that go to expert e and
    p_e its mean routed-block probability over non-padding tokens (shared / always-active excluded,
    as in AI2's training). Sums over a local batch; EMO's *global* balancing is done by the trainer.
    """
    moe_layouts = [lay for lay in layouts if not lay.is_dense]
    losses = []
    for logits, layout in zip(router_logits, moe_layouts, strict=True):
        routed = torch.tensor(layout.routed_ids, device=logits.device)
        probs = torch.softmax(logits.float().index_select(1, routed), dim=-1)  # [T, E_r]
        picks = torch.topk(probs, layout.routing_spec().routed_top_k, dim=-1).indices  # [T, k_r]
        mask = torch.ones(probs.shape[0], device=probs.device) if attention_mask is None else attention_mask.reshape(-1).float()
        losses.append(balance_loss(probs, picks, mask)[0])
    return torch.stack(losses).mean() if losses else torch.zeros(())


class EmoForCausalLM(EmoPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}
    _pp_plan = {"lm_head": (["hidden_states"], ["logits"])}

    def __init__(self, config: EmoConfig):
        super().__init__(config)
        self.model = EmoModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.router_aux_loss_coef = config.router_aux_loss_coef
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_router_logits: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Cache | None = None,  # the name before transformers 5.24
        **kwargs: Unpack[TransformersKwargs],
    ) -> MoeCausalLMOutputWithPast:
        cache = cache if cache is not None else past_key_values
        output_router_logits = output_router_logits if output_router_logits is not None else self.config.output_router_logits
        outputs: MoeModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_router_logits=output_router_logits,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden_states)  # [B, S', V]
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.vocab_size, **kwargs)
        aux_loss = None
        if output_router_logits and outputs.router_logits:
            aux_loss = load_balancing_loss(outputs.router_logits, self.model.layouts, attention_mask)
            if labels is not None:
                loss = loss + self.router_aux_loss_coef * aux_loss.to(loss.device)
        return MoeCausalLMOutputWithPast(
            loss=loss,
            aux_loss=aux_loss,
            logits=logits,
            **{CACHE_FIELD: getattr(outputs, CACHE_FIELD)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            router_logits=outputs.router_logits,
        )


__all__ = ["EmoForCausalLM", "EmoModel", "EmoPreTrainedModel"]
