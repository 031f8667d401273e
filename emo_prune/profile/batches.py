"""From documents to padded batches: tokenize, cap tokens per domain, cut windows, pack rows.

Shapes: B rows per batch, S = the longest row of the batch (<= seq_len).

Every row is one window of ONE document (documents never share a row, so attention never crosses a
document boundary); rows are right-padded and `attention_mask` is 0 on padding, which the model
ignores and the statistics skip. A document longer than seq_len becomes several consecutive rows;
they may straddle batches, and the pool statistics join them back into one document (pools.py).
Within a domain, documents are ordered by length so batches pad little; batches hold one domain each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from emo_prune.calib import Document

TOKENIZE_CHUNK = 64  # documents per tokenizer call: stops shortly after a --max-tokens budget is reached


@dataclass(frozen=True)
class TokenizedDocument:
    domain: str
    source: str
    ids: list[int]


@dataclass
class Batch:
    domain: str
    input_ids: torch.Tensor  # [B, S] int64
    attention_mask: torch.Tensor  # [B, S] int64, 0 = padding
    doc_ids: torch.Tensor  # [B] int64, run-wide document number of each row (consecutive rows may share one)
    last_window: torch.Tensor  # [B] bool, row is its document's last window
    num_tokens: int  # non-padding tokens
    num_documents: int  # documents whose last window is in this batch

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.input_ids.shape)  # type: ignore[return-value]


def tokenize_documents(documents: list[Document], tokenizer, max_tokens: int | None = None) -> list[TokenizedDocument]:
    """Tokenize with the model's tokenizer (its own special tokens), append EOS, cap tokens per domain.

    This is the one rule for text emo-prune feeds a model itself: profile, greedy selection and verify
    (then `make_batches`: right padding, one document per row). `eval` leaves tokenization to lm-eval,
    whose requests carry their own context / continuation split.
    The per-domain budget takes documents in order; the one that crosses it is truncated to fit.
    """
    eos = tokenizer.eos_token_id
    by_domain: dict[str, list[Document]] = {}
    for doc in documents:
        by_domain.setdefault(doc.domain, []).append(doc)
    result: list[TokenizedDocument] = []
    for domain, docs in by_domain.items():
        used = 0
        for start in range(0, len(docs), TOKENIZE_CHUNK):
            if max_tokens is not None and used >= max_tokens:
                break
            chunk = docs[start : start + TOKENIZE_CHUNK]
            encoded = tokenizer([d.text for d in chunk], add_special_tokens=True, verbose=False)["input_ids"]
            for doc, ids in zip(chunk, encoded, strict=True):
                ids = list(ids)
                if eos is not None and (not ids or ids[-1] != eos):
                    ids.append(eos)
                if max_tokens is not None:
                    ids = ids[: max_tokens - used]
                if not ids:
                    break
                used += len(ids)
                result.append(TokenizedDocument(domain=domain, source=doc.source, ids=ids))
    return result


def shard_documents(docs: list[TokenizedDocument], rank: int, world_size: int) -> list[TokenizedDocument]:
    """This process's share for a multi-process run: every world_size-th document of each domain."""
    by_domain: dict[str, list[TokenizedDocument]] = {}
    for doc in docs:
        by_domain.setdefault(doc.domain, []).append(doc)
    return [d for group in by_domain.values() for d in group[rank::world_size]]


def make_batches(docs: list[TokenizedDocument], seq_len: int, batch_size: int, pad_id: int) -> Iterator[Batch]:
    """Padded batches of windows, one domain per batch, a document's windows consecutive."""
    by_domain: dict[str, list[TokenizedDocument]] = {}
    for doc in docs:
        by_domain.setdefault(doc.domain, []).append(doc)
    doc_number = 0
    for domain, group in by_domain.items():
        rows: list[tuple[list[int], int, bool]] = []  # (window ids, doc number, last window)
        for doc in sorted(group, key=lambda d: len(d.ids)):  # stable: equal lengths keep document order
            starts = range(0, len(doc.ids), seq_len)
            for j, start in enumerate(starts):
                rows.append((doc.ids[start : start + seq_len], doc_number, j == len(starts) - 1))
            doc_number += 1
        for start in range(0, len(rows), batch_size):
            yield _pad(domain, rows[start : start + batch_size], pad_id)


def _pad(domain: str, rows: list[tuple[list[int], int, bool]], pad_id: int) -> Batch:
    width = max(len(ids) for ids, _, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # [B, S]
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (ids, _, _) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[r, : len(ids)] = 1
    last = torch.tensor([last for _, _, last in rows], dtype=torch.bool)
    return Batch(
        domain=domain,
        input_ids=input_ids,
        attention_mask=attention_mask,
        doc_ids=torch.tensor([n for _, n, _ in rows], dtype=torch.long),
        last_window=last,
        num_tokens=int(attention_mask.sum()),
        num_documents=int(last.sum()),
    )
