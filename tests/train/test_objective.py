"""The training objectives against straightforward recomputations of the spec's formulas."""

from __future__ import annotations

import torch

from emo_prune.models.emo.modeling_emo import EmoTopKRouter
from emo_prune.testing.factory import TinySpec, build_tiny_model
from emo_prune.train.objective import PoolRouter, RoutingContext, document_pools
from emo_prune.train.packing import positions_from_docs

E, K = 8, 3  # 7 routed + 1 shared tail expert; top-3 = 2 routed + shared


def router() -> EmoTopKRouter:
    model = build_tiny_model(TinySpec(family="emo", layers=1, hidden=16, experts=E, shared=1, top_k=K), seed=0)
    return next(m for m in model.modules() if isinstance(m, EmoTopKRouter))


def test_document_pools_are_each_documents_top_p_by_summed_probability():
    probs = torch.softmax(torch.randn(10, 7, generator=torch.Generator().manual_seed(0)), dim=-1)
    doc_ids = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    sizes = torch.tensor([2, 4, 1])
    in_pool = document_pools(probs, doc_ids, sizes)
    for d in range(3):
        rows = doc_ids == d
        expected = set(probs[rows].sum(0).topk(int(sizes[d])).indices.tolist())
        for t in rows.nonzero().flatten().tolist():
            assert set(in_pool[t].nonzero().flatten().tolist()) == expected


def test_emo_routing_stays_in_the_document_pool_and_renormalizes_over_it():
    gate = router()
    ctx = RoutingContext(objective="emo", doc_ids=torch.tensor([0] * 6 + [1] * 6), pool_sizes=torch.tensor([3, 5]))
    x = torch.randn(12, 16, generator=torch.Generator().manual_seed(1))
    logits, weights, ids = PoolRouter(gate, ctx)(x)
    routed = logits[:, :-1].double()
    pools = document_pools(torch.softmax(routed, -1), ctx.doc_ids, ctx.pool_sizes)
    for t in range(12):
        pool = pools[t].nonzero().flatten()
        pooled = torch.softmax(routed[t, pool], -1)  # softmax over the pool only
        top = pooled.topk(K - 1)
        assert ids[t, :-1].tolist() == pool[top.indices].tolist()
        torch.testing.assert_close(weights[t, :-1].double(), top.values, rtol=1e-5, atol=1e-6)
        assert ids[t, -1] == E - 1 and weights[t, -1] == 1.0  # the shared expert, weight 1


def test_standard_routing_is_the_models_own_top_k_and_global_load_balancing():
    gate = router()
    ctx = RoutingContext(objective="standard")
    x = torch.randn(20, 16, generator=torch.Generator().manual_seed(2))
    _, weights, ids = PoolRouter(gate, ctx)(x)
    _, model_weights, model_ids = gate(x)
    assert torch.equal(ids, model_ids)
    torch.testing.assert_close(weights, model_weights)
    # LB = E_r * sum_e f_e * P_e over the whole batch; z = mean logsumexp(logits)^2
    probs = torch.softmax(gate(x)[0][:, :-1].float(), -1)
    f = torch.bincount(ids[:, :-1].flatten(), minlength=E - 1).float() / (20 * (K - 1))
    torch.testing.assert_close(ctx.lb_terms[0], (E - 1) * (f * probs.mean(0)).sum())
    torch.testing.assert_close(ctx.z_terms[0], torch.logsumexp(gate(x)[0].float(), -1).pow(2).mean())


def test_positions_restart_at_document_starts():
    docs = torch.tensor([[0, 0, 1, 1, 1, 2], [2, 2, 3, 4, 4, 4]])
    assert positions_from_docs(docs).tolist() == [[0, 1, 0, 1, 2, 0], [0, 1, 0, 0, 1, 2]]


def test_training_router_computes_logits_in_the_model_dtype_like_inference():
    # the bug issue 13 names: the trainer's logits were fp32 while inference used the model dtype, so a
    # bf16 model routed differently in training than when served
    gate = router().to(torch.bfloat16)
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    logits, weights, ids = PoolRouter(gate, RoutingContext(objective="standard"))(x)
    model_logits, model_weights, model_ids = gate(x)
    assert logits.dtype == torch.bfloat16 and torch.equal(logits, model_logits)
    assert torch.equal(ids, model_ids) and torch.equal(weights, model_weights)
