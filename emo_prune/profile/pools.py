"""EMO document-pool membership: per document, which experts its top-P pool holds, at each budget.

A document's pool is the top-P routed experts by its summed routed probability s_d (EMO's training
rule, docs/emo-checkpoint.md, "EMO training objective"); fixed experts (shared / always-active) are in every pool.
Windows of one document are consecutive rows but may straddle batches: the sum of an unfinished
document is carried to the next batch (at most one per layer, as batches are visited in order).

Shapes: B rows, E experts, D documents touched by the batch, E_r routed experts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from emo_prune.arch import LayerLayout
from emo_prune.profile.store import POOL_BUDGETS, pool_size
from emo_prune.routing import top_pool


@dataclass
class DocumentGroups:
    """How a batch's rows group into documents (computed once per batch, shared by all layers)."""

    inverse: torch.Tensor  # [B] row -> local document 0..D-1 (on the compute device)
    finished: torch.Tensor  # [D] bool, document's last window is in this batch (device)
    first_doc: int  # run-wide number of local document 0
    last_doc: int  # run-wide number of local document D-1
    last_finished: bool
    num_docs: int

    @classmethod
    def of(cls, doc_ids: torch.Tensor, last_window: torch.Tensor, device: torch.device) -> DocumentGroups:
        unique, inverse = torch.unique_consecutive(doc_ids, return_inverse=True)  # [D], [B]
        group_end = torch.ones_like(last_window)
        group_end[:-1] = inverse[1:] != inverse[:-1]  # a document's last row in this batch
        finished = last_window[group_end]  # [D]
        if not bool(finished[:-1].all()):
            raise AssertionError("only the last document of a batch may continue into the next")
        return cls(
            inverse=inverse.to(device),
            finished=finished.to(device),
            first_doc=int(unique[0]),
            last_doc=int(unique[-1]),
            last_finished=bool(finished[-1]),
            num_docs=len(unique),
        )


class DocumentPools:
    """Pool-membership counts of one layer; call `add` for every batch, in batch order."""

    def __init__(self, layout: LayerLayout, device: torch.device):
        self.routed = torch.tensor(layout.routed_ids, dtype=torch.long, device=device)  # [E_r]
        self.fixed = torch.tensor(layout.fixed_ids, dtype=torch.long, device=device)
        self.sizes = {stat: pool_size(layout, fraction) for stat, fraction in POOL_BUDGETS.items()}
        self.carry_doc: int | None = None
        self.carry: torch.Tensor | None = None  # [E] partial s_d of an unfinished document

    def add(self, row_sums: torch.Tensor, groups: DocumentGroups, counts: dict[str, torch.Tensor]) -> None:
        """row_sums [B, E] float64: each row's summed probabilities; counts: stat -> [E] float64 (updated)."""
        doc_sums = torch.zeros(groups.num_docs, row_sums.shape[1], dtype=row_sums.dtype, device=row_sums.device)
        doc_sums.index_add_(0, groups.inverse, row_sums)  # [D, E]
        if self.carry is not None:
            if self.carry_doc != groups.first_doc:
                raise AssertionError(f"document {self.carry_doc} did not continue in the next batch")
            doc_sums[0] += self.carry
            self.carry_doc = self.carry = None
        if not groups.last_finished:
            self.carry_doc, self.carry = groups.last_doc, doc_sums[-1].clone()
        done = doc_sums[groups.finished][:, self.routed]  # [D', E_r] routed block only
        if done.shape[0] == 0:
            return
        for stat, size in self.sizes.items():
            if size:
                in_pool = top_pool(done, size)  # [D', E_r] bool
                counts[stat].index_add_(0, self.routed, in_pool.sum(dim=0).to(counts[stat].dtype))
            if len(self.fixed):
                counts[stat][self.fixed] += done.shape[0]
