"""Pool mode: equals masked routing, runs only pool experts, never looks at the continuation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emo_prune.errors import PlanError
from emo_prune.models.weights import load_pretrained
from emo_prune.serve import PoolSettings, load_pool_runtime, pool_sizes
from emo_prune.serve.selection import choose_pool

CONTEXT = [5, 17, 33, 2, 99, 250, 7, 61, 400, 12]
CONTINUATION = [44, 3, 180, 9, 77, 301, 15]


def masked_reference(model_dir: Path, pools: dict[int, tuple[int, ...]], ids: list[int]) -> torch.Tensor:
    """The WHOLE model with every router logit outside the pool at -inf: log-probs [S, V]."""
    model = load_pretrained(model_dir, torch.float32)
    for index, layer in enumerate(model.model.layers):
        gate = layer.mlp.gate
        member = torch.zeros(gate.weight.shape[0], dtype=torch.bool)
        member[list(pools[index])] = True
        original = gate.forward

        def masked(hidden, original=original, gate=gate, member=member):
            from emo_prune.routing import route

            logits = torch.nn.functional.linear(hidden, gate.weight).masked_fill(~member, float("-inf"))
            weights, top = route(logits, gate.spec)
            return logits, weights.to(hidden.dtype), top

        gate.forward = masked
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)


@pytest.mark.parametrize("variant", ["shared", "always_active", "plain", "fused"])
@pytest.mark.parametrize("pool", ["0.5", "4"])  # a fraction, and a count equal to top-k (no choice within)
def test_pool_equals_masked_routing(pool_models: dict[str, Path], variant: str, pool: str) -> None:
    runtime = load_pool_runtime(pool_models[variant], PoolSettings(pool=pool))
    logprobs, _, report = runtime.score(CONTEXT, CONTINUATION)
    reference = masked_reference(pool_models[variant], report.pools, CONTEXT + CONTINUATION[:-1])
    rows = reference[len(CONTEXT) - 1 :]  # the positions that predict the continuation
    expected = rows.gather(1, torch.tensor(CONTINUATION)[:, None])[:, 0]
    torch.testing.assert_close(logprobs, expected, atol=1e-5, rtol=1e-5)
    for layer, ids in report.pools.items():
        layout = runtime.layouts[layer]
        assert len(ids) == runtime.sizes[layer] and set(layout.fixed_ids) <= set(ids)


def test_full_pool_is_the_full_model(pool_models: dict[str, Path]) -> None:
    runtime = load_pool_runtime(pool_models["shared"], PoolSettings(pool="1.0"))
    logprobs, _, _ = runtime.score(CONTEXT, CONTINUATION)
    model = load_pretrained(pool_models["shared"], torch.float32)
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=torch.tensor([CONTEXT + CONTINUATION[:-1]])).logits[0], dim=-1)
    expected = full[len(CONTEXT) - 1 :].gather(1, torch.tensor(CONTINUATION)[:, None])[:, 0]
    torch.testing.assert_close(logprobs, expected, atol=1e-5, rtol=1e-5)


def test_prefill_runs_only_pool_experts(pool_models: dict[str, Path]) -> None:
    runtime = load_pool_runtime(pool_models["shared"], PoolSettings(pool="0.5"))
    assert not any("experts" in name for name in runtime.model.state_dict())  # no expert weight is resident
    runtime.prefill(CONTEXT)
    request = runtime.request
    called = {(layer, e) for (layer, e), tokens in request.calls.items() if tokens}
    in_pools = {(layer, e) for layer, ids in request.pools.items() for e in ids}
    assert called and called <= in_pools
    # each layer's pool was read once from disk, nothing else: misses == pool sizes
    assert runtime.store.stats.misses == sum(len(ids) for ids in request.pools.values())
    # every context token went through its layer's shared expert (15 = last id) and k - 1 routed ones
    for layer in request.pools:
        assert request.calls[(layer, 15)] == len(CONTEXT)
        assert sum(t for (lay, _), t in request.calls.items() if lay == layer) == len(CONTEXT) * 4


def test_pool_never_depends_on_the_continuation(pool_models: dict[str, Path]) -> None:
    runtime = load_pool_runtime(pool_models["shared"], PoolSettings(pool="0.5", draft=4))
    pools = []
    for continuation in (CONTINUATION, [300, 301, 302], list(reversed(CONTINUATION)) * 3):
        _, _, report = runtime.score(CONTEXT, continuation)
        pools.append(report.pools)
    assert pools[0] == pools[1] == pools[2]
    _, _, other = runtime.score(CONTEXT[:-3] + [450, 451, 452], CONTINUATION)
    assert other.pools != pools[0]  # the context does choose them


def test_reselection_uses_only_tokens_already_fed(pool_models: dict[str, Path]) -> None:
    runtime = load_pool_runtime(pool_models["shared"], PoolSettings(pool="0.5", reselect_every=2))
    base = CONTINUATION
    changed = base[:4] + [460, 461, 462]  # differs from token 4 on
    a, _, report_a = runtime.score(CONTEXT, base)
    b, _, report_b = runtime.score(CONTEXT, changed)
    # tokens 0..3 (the same in both) are scored identically: no pool looked at a later token
    torch.testing.assert_close(a[:4], b[:4])
    assert report_a.reselections[:1] == report_b.reselections[:1]  # after tokens 0..1 (fed: 0), identical
    # generation re-chooses on the same schedule as scoring
    new, report = runtime.generate(CONTEXT, 7)
    assert len(report.reselections) == 3 and len(new) == 7


def test_generate_greedy_equals_scoring_its_output(pool_models: dict[str, Path]) -> None:
    runtime = load_pool_runtime(pool_models["shared"], PoolSettings(pool="0.5"))
    new, report = runtime.generate(CONTEXT, 6)
    _, greedy, scored = runtime.score(CONTEXT, new)
    assert greedy and scored.pools == report.pools


def test_pool_sizes_follow_keep() -> None:
    from emo_prune.arch import LayerLayout

    layouts = [LayerLayout(index=0, num_experts=32, num_shared=1, top_k=4), LayerLayout(index=1, num_experts=0)]
    assert pool_sizes("0.125", layouts) == [4, None]
    assert pool_sizes("8", layouts) == [8, None]
    with pytest.raises(PlanError, match="--pool"):
        pool_sizes("0.05", layouts)
    mass = torch.arange(32, dtype=torch.float64)
    assert choose_pool(mass, layouts[0], 4) == (28, 29, 30, 31)  # top-3 routed + shared 31


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_pools_are_the_top_experts_by_summed_powers_of_the_context(pool_models: dict[str, Path], power: float) -> None:
    """Reference: the whole model routed within the request's pools gives each layer's router logits on
    the context; the pool is the top-P routed experts by sum over the context of p^power."""
    from emo_prune.routing import router_probabilities

    model_dir = pool_models["shared"]
    runtime = load_pool_runtime(model_dir, PoolSettings(pool="0.5", pool_power=power))
    _, _, report = runtime.score(CONTEXT, CONTINUATION)
    model = load_pretrained(model_dir, torch.float32)
    captured: dict[int, torch.Tensor] = {}
    for index, layer in enumerate(model.model.layers):
        gate = layer.mlp.gate
        member = torch.zeros(gate.weight.shape[0], dtype=torch.bool)
        member[list(report.pools[index])] = True

        def masked(hidden, gate=gate, member=member, index=index):
            from emo_prune.routing import route

            logits = torch.nn.functional.linear(hidden, gate.weight)
            captured[index] = logits.reshape(-1, logits.shape[-1])
            weights, top = route(logits.masked_fill(~member, float("-inf")), gate.spec)
            return logits, weights.to(hidden.dtype), top

        gate.forward = masked
    with torch.no_grad():
        model(input_ids=torch.tensor([CONTEXT]))
    for index, ids in report.pools.items():
        layout = runtime.layouts[index]
        scores = router_probabilities(captured[index], layout.routing_spec()).double().pow(power).sum(0)
        assert ids == choose_pool(scores, layout, runtime.sizes[index])


def test_pool_power_must_be_positive() -> None:
    with pytest.raises(PlanError, match="--pool-power must be > 0"):
        PoolSettings(pool_power=0)
