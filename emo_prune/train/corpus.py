"""The training mixture of the small bundled models: built-in domains, balanced by token budget.

The built-in corpora differ in size by 20x (Python sources ~11M chars, doc topics ~0.6M, generated
math ~0.5M), so each domain gets a share of the training tokens; a large domain is subsampled and
prose, the smallest, is repeated (reshuffled per pass). Math is generated fresh with other seeds up
to its budget (problems that fall in the held-out split by hash are dropped). Only `train`-split text
is used: held-out documents stay unseen for profiling and evaluation.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from emo_prune.calib import Document, load_documents, split_of
from emo_prune.calib.builtin_math import math_texts

DEFAULT_SHARES = {"code": 0.5, "prose": 0.15, "math": 0.35}


def mixture(
    shares: dict[str, float],
    total_chars: int,
    seed: int = 0,
    max_doc_chars: int = 6000,
) -> list[tuple[str, str]]:
    """(domain, text) documents: `shares[d] * total_chars` characters of domain d, in a seeded order.

    Documents longer than `max_doc_chars` are cut into pieces (at line breaks) so one huge module
    cannot dominate a domain's budget.
    """
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for domain, share in sorted(shares.items()):
        budget = int(share * total_chars)
        if domain == "math":
            docs = _fresh_math(budget, seed)
        else:
            docs = _pieces(load_documents([f"builtin:{domain}:train"], seed=seed), max_doc_chars)
        taken = 0
        while taken < budget:
            order = list(docs)
            rng.shuffle(order)
            for text in order:
                out.append((domain, text))
                taken += len(text)
                if taken >= budget:
                    break
    rng.shuffle(out)
    return out


def _fresh_math(budget_chars: int, seed: int) -> list[str]:
    """Unique generated problems, train split only, about `budget_chars` characters."""
    texts: list[str] = []
    seen: set[str] = set()
    total, generator_seed = 0, 1000 + seed
    while total < budget_chars:
        for text in math_texts(seed=generator_seed, count=4000):
            if text not in seen and split_of(text) == "train":
                seen.add(text)
                texts.append(text)
                total += len(text)
        generator_seed += 1
    return texts


def _pieces(docs: Sequence[Document], max_chars: int) -> list[str]:
    pieces: list[str] = []
    for doc in docs:
        text = doc.text
        while len(text) > max_chars:
            cut = text.rfind("\n", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            pieces.append(text[:cut])
            text = text[cut:].lstrip("\n")
        if text.strip():
            pieces.append(text)
    return pieces
