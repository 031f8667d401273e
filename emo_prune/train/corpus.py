"""The training mixture of the small bundled models: built-in domains, balanced by token budget.

The built-in corpora differ in size by 20x (Python sources ~11M chars, doc topics ~0.6M, generated
math ~0.5M), so each domain gets a share of the training tokens; a small domain is repeated
(reshuffled per pass) and a large one is subsampled. Only the `train` split is used: held-out
documents stay unseen for profiling and evaluation.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from emo_prune.calib import Document, load_documents

DEFAULT_SHARES = {"code": 0.4, "prose": 0.3, "math": 0.3}


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
        docs = _pieces(load_documents([f"builtin:{domain}:train"], seed=seed), max_doc_chars)
        budget = int(share * total_chars)
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
