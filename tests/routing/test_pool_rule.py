"""EMO's pool rule (`emo_prune.routing.top_pool`): one function for training, profiling and serving.

Pins what the four users rely on: ties go to the lower expert id, sizes count routed experts only, a
size per row is honoured, and each user picks the same experts from the same mass.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emo_prune.arch import LayerLayout
from emo_prune.profile.report import _in_pool
from emo_prune.routing import top_pool
from emo_prune.serve.selection import choose_pool
from emo_prune.train.objective import document_pools


@pytest.mark.parametrize(
    ("mass", "size", "members"),
    [
        ([3.0, 1.0, 3.0, 2.0], 2, [0, 2]),  # two tied leaders: both in
        ([3.0, 1.0, 3.0, 2.0], 1, [0]),  # a tie at the cut: the lower id wins
        ([1.0, 1.0, 1.0, 1.0], 3, [0, 1, 2]),  # all tied: the lowest ids
        ([0.5, 2.0, 0.5, 0.5], 2, [0, 1]),  # a tie behind the leader: the lower id fills the last place
        ([1.0, 2.0, 3.0], 0, []),  # size 0: an empty pool
        ([1.0, 2.0, 3.0], 5, [0, 1, 2]),  # size above E_r: every expert
    ],
)
def test_ties_and_sizes(mass, size, members):
    in_pool = top_pool(torch.tensor(mass, dtype=torch.float64), size)
    assert in_pool.dtype == torch.bool and torch.nonzero(in_pool).flatten().tolist() == members


def test_a_size_per_row():
    mass = torch.tensor([[1.0, 1.0, 2.0, 0.0], [4.0, 3.0, 3.0, 1.0]])  # [D=2, E_r=4]
    in_pool = top_pool(mass, torch.tensor([1, 2]))
    assert in_pool.tolist() == [[False, False, True, False], [True, True, False, False]]


def test_the_users_agree_on_tied_mass():
    """Training's document pools, the profile report's subsets and serving's pools pick the same
    experts from one tied mass (before the one rule, training's argsort left ties to the device)."""
    routed_mass = torch.tensor([2.0, 5.0, 2.0, 2.0, 5.0, 1.0, 2.0], dtype=torch.float64)  # E_r = 7
    expected = [0, 1, 4]  # the two 5s, then the lowest of the four 2s
    # training: one document of 7 tokens, each carrying a share of the mass
    probs = (routed_mass / 7).expand(7, -1).contiguous()  # [T, E_r]
    doc = document_pools(probs, torch.zeros(7, dtype=torch.long), torch.tensor([3]))  # [T, E_r]
    assert torch.nonzero(doc[0]).flatten().tolist() == expected
    # profile report (numpy)
    assert np.flatnonzero(_in_pool(routed_mass.numpy(), 3)).tolist() == expected
    # serving: 8 experts, the last one shared (fixed), a pool of 4 = 3 routed + the shared one
    layout = LayerLayout(index=0, num_experts=8, num_shared=1, top_k=2)
    assert choose_pool(torch.cat([routed_mass, torch.tensor([0.0], dtype=torch.float64)]), layout, 4) == (*expected, 7)
