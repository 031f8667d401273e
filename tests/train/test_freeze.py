"""The --train modes freeze exactly what they say, parameter by parameter and row by row: one real AdamW
step after a real backward pass moves the trained tensors / rows and leaves every other byte alone."""

from __future__ import annotations

import pytest
import torch

from emo_prune.errors import TrainingError
from emo_prune.io import Checkpoint
from emo_prune.models.loading import load_whole
from emo_prune.train.freeze import apply_freeze, trainable_set

ROUTED, SHARED = list(range(7)), [7]  # the tiny EMO model: 8 experts, the last one shared


def one_step(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters before a real forward / backward / AdamW step (weight decay 0); the model is stepped."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    ids = torch.randint(2, 500, (2, 12), generator=torch.Generator().manual_seed(0))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0).step()
    return before


def moved_rows(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    return [i for i in range(after.shape[0]) if not torch.equal(before[i], after[i])]


def expected(mode: str, name: str, plan: list[int] | None = None) -> list[int] | str | None:
    """What `mode` trains of tensor `name`: 'all' (every row), a row list, or None (frozen)."""
    expert = name.endswith(("gate_up_proj", "down_proj")) and ".experts." in name
    router = name.endswith("mlp.gate.weight")
    if mode == "all":
        return "all"
    rows = ROUTED + ([] if mode == "experts" else SHARED)
    if plan is not None:
        rows = [e for e in rows if e in plan]
    if expert or (router and mode == "experts+shared+router"):
        return rows
    return None


@pytest.mark.parametrize("mode", ["all", "experts", "experts+shared", "experts+shared+router"])
def test_each_mode_moves_exactly_its_parameters(full, mode):
    model = load_whole(full, torch.float32)
    arch = Checkpoint.open(full).architecture
    apply_freeze(model, trainable_set(model, arch, mode))
    before = one_step(model)
    for name, param in model.named_parameters():
        want = expected(mode, name)
        moved = moved_rows(before[name].reshape(before[name].shape[0], -1), param.detach().reshape(param.shape[0], -1))
        if want is None:
            assert not param.requires_grad and moved == [], name
        elif want == "all":
            assert param.requires_grad and moved, name
        else:
            if name.endswith("mlp.gate.weight"):  # the shared expert's router row gets no gradient: it never competes
                want = [e for e in want if e not in SHARED]
            assert param.requires_grad and moved == want, (name, moved, want)


def test_experts_of_a_plan_moves_only_the_plans_rows(full):
    model = load_whole(full, torch.float32)
    arch = Checkpoint.open(full).architecture
    kept = [[0, 3, 7], [2, 5, 7]]
    apply_freeze(model, trainable_set(model, arch, "experts", kept, router=True))
    before = one_step(model)
    for name, param in model.named_parameters():
        layer = int(name.split(".")[2]) if name.startswith("model.layers.") else None
        if name.endswith(("gate_up_proj", "down_proj", "mlp.gate.weight")):
            assert moved_rows(before[name], param.detach()) == [e for e in kept[layer] if e not in SHARED], name
        else:
            assert torch.equal(before[name], param.detach()), name


def test_nothing_to_train_is_refused(full):
    model = load_whole(full, torch.float32)
    arch = Checkpoint.open(full).architecture
    with pytest.raises(TrainingError, match="nothing to train"):
        apply_freeze(model, trainable_set(model, arch, "experts", [[7], [7]]))  # a plan of the shared expert only
