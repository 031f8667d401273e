"""`--lora RANK`: a peft LoRA adapter over the tensors a --train mode trains, merged into the weights on save.

Which tensors get an adapter: the `nn.Linear` modules whose weight the mode trains (`target_modules`:
attention projections, a separate shared expert, dense MLPs) and the stacked expert / router parameters
that are no Linear (`target_parameters`: `experts.gate_up_proj` [E, 2I, H], `experts.down_proj` [E, H, I],
`gate.weight` [E, H]), which peft adapts as whole parameters. Embeddings, norms and the LM head stay
frozen, as usual for LoRA. Modes that train only some rows of a stacked tensor are refused before this
(`FinetuneSettings.check`): an adapter over a whole parameter cannot keep the other rows unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from emo_prune.errors import TrainingError
from emo_prune.train.freeze import TrainableSet


def lora_targets(model: torch.nn.Module, trainable: TrainableSet) -> tuple[list[str], list[str]]:
    """(Linear module names, parameter names) of the trained tensors that an adapter can cover."""
    linear = {f"{name}.weight": name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    embeddings = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Embedding)}
    head = getattr(model, "lm_head", None)
    modules, parameters = [], []
    for name, param in model.named_parameters():
        if name not in trainable.parts or param.ndim < 2 or name.rsplit(".", 1)[0] in embeddings:
            continue
        if name in linear:
            if head is None or linear[name] != "lm_head":
                modules.append(linear[name])
        else:
            parameters.append(name)
    return modules, parameters


def wrap_lora(model: Any, trainable: TrainableSet, rank: int) -> Any:
    from peft import LoraConfig, get_peft_model

    modules, parameters = lora_targets(model, trainable)
    if not modules and not parameters:
        raise TrainingError("--lora: this --train mode trains no matrix an adapter can cover; drop --lora")
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules=modules,  # exact names; [] (not None: peft would add its defaults for the model type)
        target_parameters=parameters or None,
        bias="none",
    )
    return get_peft_model(model, config)
