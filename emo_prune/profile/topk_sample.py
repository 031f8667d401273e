"""A bounded, mergeable sample of calibration tokens' top-k expert sets (what `--method coverage` reads).

Shapes: L layers, N = SAMPLE_SIZE sampled tokens per domain and layer, k_max = the largest top-k of
any layer (a layer with k_l < k_max pads its rows with -1; dense layers and unused rows are all -1).

Why a sample: coverage asks how many tokens have their WHOLE top-k set inside a kept set, which no
per-expert sum answers (and pairwise co-activation only answers it for k = 2). Storing every
token's set grows with the calibration set; counts of distinct sets grow with it too. A uniform
sample of N tokens is bounded (N * k_max int32 + N float64 per domain and layer: 2048 tokens x k 8
-> 80 KiB; 48 layers -> 4 MiB per domain) and estimates any kept set's coverage share with a
standard error below sqrt(0.25 / N) = 1.1 points at N = 2048.

The sample is a bottom-N sample: every non-padding token gets a priority, uniform in [0, 1) and a
pure function of (domain, batch number in that domain, rank, position) (`token_priorities`), and
the sample holds the N tokens of lowest priority. So the whole-model and layer-by-layer runners
sample the SAME tokens, every layer samples the same tokens, and samples of disjoint token sets
merge exactly (`lowest`: keep the N lowest priorities of the union), as the profile's sums add up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

SAMPLE_SIZE = 2048  # tokens per domain and layer (the bound above)


def priority_seed(domain: str, batch_number: int, rank: int) -> int:
    """The generator seed of one batch's token priorities (stable across runners and runs)."""
    digest = hashlib.sha256(f"emo-prune:topk-sample:{domain}:{batch_number}:{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


@dataclass
class TopkSample:
    """Sampled tokens of one domain: ids [L, N, k_max] int32 (-1 = none), priority [L, N] float64 (inf = empty)."""

    ids: np.ndarray
    priority: np.ndarray

    @classmethod
    def empty(cls, num_layers: int, size: int, width: int) -> TopkSample:
        return cls(np.full((num_layers, size, width), -1, dtype=np.int32), np.full((num_layers, size), np.inf))

    def merge(self, other: TopkSample) -> TopkSample:
        """The bottom-N sample of both token sets (same N and width: same model, same settings)."""
        if self.ids.shape != other.ids.shape:
            raise ValueError(f"top-k samples of shapes {self.ids.shape} and {other.ids.shape}")
        ids, priority = [], []
        for layer in range(self.ids.shape[0]):
            i, p = lowest(
                np.concatenate([self.priority[layer], other.priority[layer]]),
                np.concatenate([self.ids[layer], other.ids[layer]]),
                self.ids.shape[1],
            )
            ids.append(i)
            priority.append(p)
        return TopkSample(np.stack(ids), np.stack(priority))

    def sets(self, layer: int) -> list[tuple[int, ...]]:
        """The sampled tokens' top-k sets at `layer` (ids ascending, padding dropped)."""
        rows = self.ids[layer][np.isfinite(self.priority[layer])]
        return [tuple(int(e) for e in row if e >= 0) for row in rows]


def lowest(priority: np.ndarray, ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids [n, k], priority [n]) of the n lowest priorities among priority [M], ids [M, k]."""
    order = np.argsort(priority, kind="stable")[:n]
    return ids[order], priority[order]
