"""Checkpoint tensors into a transformers model, one tensor at a time: no second copy of any layer.

Shapes: E experts of a layer, H hidden, I expert width, V vocab.

transformers' `from_pretrained` turns per-expert keys (`mlp.experts.{e}.gate_proj.weight` [I, H], AI2's
layout) into the fused parameters (`gate_up_proj` [E, 2I, H], `down_proj` [E, H, I]) by collecting a
layer's experts, stacking them and concatenating gate and up, with the shard memory-mapped: both
layouts and the mapped pages are alive at once (measured: 2.35x the checkpoint's bytes). Here the
module tree is built on the meta device, each parameter is allocated once at its final shape, dtype
and device, and every on-disk tensor is read with plain file reads (`emo_prune.io.ranges.read_tensor`:
mapped shard pages would count towards the process's memory until the shard is closed) and copied
into its rows. Peak: the model's own bytes plus the one tensor in flight.

Every supported family goes through the same code: the family file says which on-disk names are the
router and the experts (`MoEArchitecture.classify`); everything else keeps its name under the layer.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from emo_prune.arch import MoEArchitecture
from emo_prune.arch.family import PROJECTIONS
from emo_prune.errors import CheckpointError
from emo_prune.io import CONFIG_FILE, Checkpoint, build_inventory
from emo_prune.io.model_files import staged_files
from emo_prune.io.ranges import read_tensor

FUSED_PARAM = {"gate_up": "gate_up_proj", "down": "down_proj"}
GENERATION_CONFIG = "generation_config.json"


def decoder_of(model: nn.Module) -> nn.Module:
    """The decoder (embeddings, layers, norm) of a causal LM: `model.model` for every supported family."""
    return getattr(model, model.base_model_prefix)


def meta_model(checkpoint: Checkpoint, dtype: torch.dtype, device: torch.device, **config_kwargs) -> nn.Module:
    """The model's module tree with no weights (meta device), rotary tables real on `device`.

    Nothing is allocated before the checkpoint's headers agree with its config (`build_inventory`: layer
    count, expert count and top-k of every layer, dense vs MoE layers, every expert tensor present), and
    transformers reads a checked copy of config.json (`io.model_files`), never the folder."""
    from transformers import AutoConfig, AutoModelForCausalLM  # EMO is registered: emo_prune's face ran first

    build_inventory(checkpoint)
    with staged_files(checkpoint.path, only=(CONFIG_FILE,)) as staged:
        config = AutoConfig.from_pretrained(str(staged))
    config._name_or_path = str(checkpoint.path)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, **config_kwargs)
    decoder = decoder_of(model)
    with torch.device(device):
        decoder.rotary_emb = type(decoder.rotary_emb)(config=decoder.config)
    return model.eval()


def layer_state(
    checkpoint: Checkpoint,
    arch: MoEArchitecture,
    index: int,
    dtype: torch.dtype,
    device: torch.device,
    experts: bool = True,
) -> dict[str, torch.Tensor]:
    """Layer `index`'s tensors under the in-memory module names, per-expert tensors copied into fused ones.

    `experts=False` leaves the expert tensors out (pool mode reads them on demand, `emo_prune.serve`)."""
    family = arch.family
    prefix = family.prefix(index)
    names = [n for n in checkpoint.names if n.startswith(prefix)]
    if not names:
        raise CheckpointError(f"{checkpoint.path} holds no tensor of layer {index} (prefix {prefix!r})")
    state: dict[str, torch.Tensor] = {}
    fused: dict[str, torch.Tensor] = {}
    filled: set[tuple[int, str]] = set()  # (expert, projection) copied into `fused`
    E = arch.layouts[index].num_experts
    for name in sorted(names, key=lambda n: (checkpoint.weight_map[n], checkpoint.tensor(n).begin)):  # file order
        role = arch.classify(name)
        if not experts and role.kind in ("expert", "fused"):
            continue
        if role.kind == "expert":
            if not 0 <= role.expert < E:
                raise CheckpointError(f"{name} is expert {role.expert}, but the config gives layer {index} {E} experts")
            _copy_expert(fused, read_tensor(checkpoint, name), role.expert, role.projection, E, dtype, device)
            filled.add((role.expert, role.projection))
            continue
        if role.kind == "router":
            key = f"{family.router.module}.weight"
        elif role.kind == "router_vector":
            key = f"{family.router.module}.{name.rsplit('.', 1)[1]}"
        elif role.kind == "fused":
            key = f"{family.experts.module}.{FUSED_PARAM[role.projection]}"
        else:
            key = name[len(prefix) :]
        state[key] = read_tensor(checkpoint, name).to(device, dtype)
    missing = [(e, p) for e in range(E) for p in PROJECTIONS if (e, p) not in filled] if filled else []
    if missing:  # the fused buffers are torch.empty: a row no tensor filled would be uninitialized memory
        expert, projection = missing[0]
        raise CheckpointError(
            f"{checkpoint.path}: {arch.per_expert_key(index, expert, projection)!r} is not in the checkpoint, but the "
            f"config gives layer {index} {E} experts; fix the config's expert count or restore the tensor"
        )
    for which, tensor in fused.items():
        state[f"{family.experts.module}.{FUSED_PARAM[which]}"] = tensor
    return state


def _copy_expert(
    fused: dict[str, torch.Tensor], tensor: torch.Tensor, expert: int, projection: str, E: int, dtype, device
) -> None:
    """Copy one on-disk expert projection (gate/up [I, H], down [H, I]) into the fused parameter."""
    if projection == "down":
        H, I = tensor.shape
        target = fused.setdefault("down", torch.empty(E, H, I, dtype=dtype, device=device))
        target[expert].copy_(tensor)
        return
    I, H = tensor.shape
    target = fused.setdefault("gate_up", torch.empty(E, 2 * I, H, dtype=dtype, device=device))
    rows = slice(0, I) if projection == "gate" else slice(I, 2 * I)
    target[expert, rows].copy_(tensor)


def assign(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Give `module` exactly the tensors of `state` (names, shapes checked) as its parameters."""
    shapes = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    missing, unexpected = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: the checkpoint's tensors do not match the model built from config.json "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for name, tensor in state.items():
        if shapes[name] != tuple(tensor.shape):
            raise CheckpointError(f"{where}: {name} has shape {tuple(tensor.shape)}, the config implies {shapes[name]}")
    module.load_state_dict(state, strict=True, assign=True)


def load_layer(model: nn.Module, checkpoint: Checkpoint, index: int, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """Decoder layer `index` of a meta `model`, its weights read from the checkpoint."""
    layer = decoder_of(model).layers[index]
    assign(layer, layer_state(checkpoint, checkpoint.architecture, index, dtype, device), f"layer {index}")
    return layer


def load_module(
    model: nn.Module, checkpoint: Checkpoint, module_name: str, dtype: torch.dtype, device: torch.device
) -> nn.Module:
    """A non-layer module of a meta `model` (`model.embed_tokens`, `model.norm`, `lm_head`), weights read."""
    module = model.get_submodule(module_name)
    prefix = module_name + "."
    names = {n[len(prefix) :]: n for n in checkpoint.names if n.startswith(prefix)}
    if not names and module is model.get_output_embeddings() and getattr(model.config, "tie_word_embeddings", False):
        embeddings = model.get_input_embeddings()  # a tied head is the embedding matrix, stored once
        names = {"weight": next(f"{n}.weight" for n, m in model.named_modules() if m is embeddings)}
    assign(module, {k: read_tensor(checkpoint, n).to(device, dtype) for k, n in names.items()}, module_name)
    return module


def head_modules(model: nn.Module) -> list[str]:
    """Names of the modules outside the decoder layers that hold weights, in forward order."""
    decoder = decoder_of(model)
    prefix = model.base_model_prefix
    names = [f"{prefix}.{name}" for name, _ in decoder.named_children() if name not in ("layers", "rotary_emb")]
    return names + [name for name, _ in model.named_children() if name != prefix]


def load_heads(model: nn.Module, checkpoint: Checkpoint, dtype: torch.dtype, device: torch.device) -> None:
    """Finish a model whose layers are loaded: the modules outside the layers, tied weights, a check that
    no parameter is left on the meta device, and the path as from_pretrained records it (lm-eval reads it)."""
    for name in head_modules(model):
        load_module(model, checkpoint, name, dtype, device)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"{checkpoint.path}: no weights for {left[:3]} in the checkpoint")
    model.config._name_or_path = str(checkpoint.path)


def load_pretrained(model_dir: str | Path, dtype: torch.dtype, device: torch.device | str = "cpu", **config_kwargs) -> nn.Module:
    """The whole model in eval mode, loaded tensor by tensor (see the module docstring).

    `config_kwargs` go to `from_config` (e.g. `experts_implementation="emo_cpu"`).
    """
    device = torch.device(device)
    checkpoint = Checkpoint.open(model_dir)
    model = meta_model(checkpoint, dtype, device, **config_kwargs)
    for index in range(checkpoint.architecture.num_layers):
        load_layer(model, checkpoint, index, dtype, device)
    load_heads(model, checkpoint, dtype, device)
    if (checkpoint.path / GENERATION_CONFIG).exists():
        from transformers import GenerationConfig

        with staged_files(checkpoint.path, only=(GENERATION_CONFIG,)) as staged:
            model.generation_config = GenerationConfig.from_pretrained(str(staged))
    return model.eval()
