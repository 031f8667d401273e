"""Packing documents into fixed-length training rows, EOS-delimited, with document ids.

Row layout ([S] each, S = seq_len): the token stream doc_0 EOS doc_1 EOS ... cut into rows of S+1
tokens (inputs = row[:-1], labels = row[1:]); a document may continue on the next row.
  doc_ids       document index of every input token (unique across the whole run), for EMO pools
  position_ids  restart at 0 at every document start: with attention_mask=None transformers turns
                them into a block-diagonal causal mask (EMO's document masking); the standard
                objective uses plain 0..S-1 positions instead (attention crosses documents).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # [B, S]
    labels: torch.Tensor  # [B, S]
    doc_ids: torch.Tensor  # [B, S] int64, unique per document in the batch
    position_ids: torch.Tensor  # [B, S], restarting at each document start
    domains: list[list[str]]  # per row, domains present (for logging)


def token_stream(docs: Iterable[tuple[str, list[int]]], eos_id: int) -> Iterator[tuple[int, int, str]]:
    """Yield (token, doc_index, domain) over `docs` = (domain, token ids), each followed by EOS."""
    for doc_index, (domain, ids) in enumerate(docs):
        for token in ids:
            yield token, doc_index, domain
        yield eos_id, doc_index, domain


def pack_rows(stream: Iterator[tuple[int, int, str]], seq_len: int) -> Iterator[tuple[list[int], list[int], list[str]]]:
    """Rows of seq_len + 1 (token, doc) pairs; the last token of a row starts the next one (no token lost)."""
    tokens: list[int] = []
    docs: list[int] = []
    domains: list[str] = []
    for token, doc, domain in stream:
        tokens.append(token)
        docs.append(doc)
        domains.append(domain)
        if len(tokens) == seq_len + 1:
            yield tokens, docs, domains
            tokens, docs, domains = tokens[-1:], docs[-1:], domains[-1:]


def positions_from_docs(doc_ids: torch.Tensor) -> torch.Tensor:
    """[B, S] doc ids -> positions restarting at 0 where the doc id changes (and at each row start)."""
    B, S = doc_ids.shape
    starts = torch.ones_like(doc_ids, dtype=torch.bool)
    starts[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    index = torch.arange(S).expand(B, S)
    last_start = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - last_start


def batches(rows: Iterator[tuple[list[int], list[int], list[str]]], batch_size: int) -> Iterator[PackedBatch]:
    while True:
        chunk = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == batch_size:
                break
        if len(chunk) < batch_size:
            return
        ids = torch.tensor([r[0] for r in chunk])  # [B, S+1]
        docs = torch.tensor([r[1][:-1] for r in chunk])  # [B, S]
        yield PackedBatch(
            input_ids=ids[:, :-1],
            labels=ids[:, 1:],
            doc_ids=docs,
            position_ids=positions_from_docs(docs),
            domains=[sorted(set(r[2][:-1])) for r in chunk],
        )
