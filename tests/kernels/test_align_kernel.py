"""Token-expert alignment (kernels/align.py) against its invariants, computed the dumb way."""

from __future__ import annotations

import pytest
import torch
from moe_cases import distinct_ids

from emo_prune_kernels.align import align_pairs, max_blocks_for

BLOCK_M = 16


def check_alignment(ids: torch.Tensor, num_experts: int) -> None:
    sorted_pairs, block_expert = align_pairs(ids, num_experts, BLOCK_M)
    flat = ids.reshape(-1).tolist()
    P = len(flat)
    assert sorted_pairs.numel() == block_expert.numel() * BLOCK_M == max_blocks_for(P, num_experts, BLOCK_M) * BLOCK_M
    blocks = sorted_pairs.view(-1, BLOCK_M).tolist()  # [max_blocks, BLOCK_M]
    owners = block_expert.tolist()
    used = sum(1 for o in owners if o >= 0)
    assert all(o >= 0 for o in owners[:used]) and all(o == -1 for o in owners[used:])  # used blocks first
    assert owners[:used] == sorted(owners[:used])  # grouped by expert, in expert order
    for e in range(num_experts):
        mine = [p for p, x in enumerate(flat) if x == e]  # pairs of e, in pair order
        rows = [p for b, o in zip(blocks, owners) if o == e for p in b]
        assert len(rows) == -(-len(mine) // BLOCK_M) * BLOCK_M  # padded to whole blocks, none if empty
        assert rows[: len(mine)] == mine  # every pair once, stable order
        assert all(p == P for p in rows[len(mine) :])  # padding is the sentinel
    for b in blocks[used:]:
        assert all(p == P for p in b)  # unused tail untouched


@pytest.mark.parametrize("tokens", [1, 33, 80])  # one token, odd count, many blocks per expert
@pytest.mark.parametrize("experts,top_k", [(3, 3), (12, 4), (16, 8)])  # k == E, E not 2^n, EMO-like
def test_alignment_invariants(tokens: int, experts: int, top_k: int) -> None:
    check_alignment(distinct_ids(tokens, experts, top_k, seed=tokens), experts)


def test_experts_without_tokens() -> None:
    # routing confined to 5 of 16 experts: the other 11 get no block at all
    ids = distinct_ids(33, 16, 4, pool=[1, 4, 5, 11, 15])
    check_alignment(ids, 16)
    _, block_expert = align_pairs(ids, 16, BLOCK_M)
    assert set(block_expert.tolist()) - {-1} == {1, 4, 5, 11, 15}


def test_expert_parallel_sentinels_are_dropped() -> None:
    # ids >= E mark pairs owned by another rank: no slot, no block
    ids = distinct_ids(20, 6, 2)
    ids[::3, 0] = 6
    check_alignment(ids, 6)
    sorted_pairs, _ = align_pairs(ids, 6, BLOCK_M)
    dropped = {p for p, e in enumerate(ids.reshape(-1).tolist()) if e == 6}
    assert not dropped & set(sorted_pairs.tolist())
