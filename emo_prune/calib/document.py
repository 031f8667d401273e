"""A calibration document, its digest and its stable train / calib / held-out split.

A document is one unit of calibration text (a module, a doc topic, one problem, one JSONL record). It
is tokenized on its own and never shares a sequence with another document; windows of a long document
still count as ONE document for EMO pool membership.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Split = Literal["train", "calib", "heldout"]
SPLITS: tuple[str, ...] = ("train", "calib", "heldout")
#: share of documents in the held-out split (evaluation) and in the calib split (profiling models
#: trained on `train`); chosen by a hash of the text, so a document keeps its split whatever source,
#: order or seed it comes with (trainers, profilers and evaluators agree without sharing a file).
HELDOUT_FRACTION = 0.1
CALIB_FRACTION = 0.1


# A domain name: 1-64 ASCII letters, digits, '_', '.' and '-', not '.' or '..'. The one alphabet of
# every domain, checked where one is written (calibration sources, profile and pool-index files) and
# where one is read back (profiles, pool indexes): a domain names tensors ("{domain}/tokens"), joins
# output names ("code+math") and is printed in tables, so it can hold no '/', space, control
# character or markup.
DOMAIN_ALPHABET = "1-64 ASCII letters, digits, '_', '.' or '-' (not '.' or '..')"
_DOMAIN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def is_domain(name: object) -> bool:
    """Whether `name` is a str in DOMAIN_ALPHABET."""
    return isinstance(name, str) and _DOMAIN.fullmatch(name) is not None and name not in (".", "..")


def domain_problem(name: object, where: str) -> str:
    """The one-line message for a bad domain name: `where` (a file, a source), the name quoted, the rule."""
    if isinstance(name, str):
        shown = repr(name[:80]) + ("..." if len(name) > 80 else "")  # a hostile name may be megabytes
    else:
        shown = f"of type {type(name).__name__}"
    return f"{where}: domain name {shown} is not allowed; a domain is {DOMAIN_ALPHABET}"


@dataclass(frozen=True)
class Document:
    text: str
    domain: str
    source: str  # the source spec it came from, e.g. "builtin:code" or "data/code.jsonl"


def split_of(text: str, heldout_fraction: float = HELDOUT_FRACTION) -> Split:
    """A stable split by sha256 of the text: 'heldout' for ~`heldout_fraction` of texts, 'calib' for the
    next ~CALIB_FRACTION, else 'train'. Models trained here see only 'train'; profiles of them use
    'calib'; evaluation uses 'heldout', so no step is judged on text another step chose from."""
    bucket = int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "big") / 2**64
    if bucket < heldout_fraction:
        return "heldout"
    return "calib" if bucket < heldout_fraction + CALIB_FRACTION else "train"


def source_digest(documents: Iterable[Document]) -> str:
    """sha256 over the documents' domains and texts, in order: what a profile records per source."""
    h = hashlib.sha256()
    for doc in documents:
        for part in (doc.domain, doc.text):
            data = part.encode("utf-8", "surrogatepass")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()


def describe_sources(documents: list[Document]) -> list[dict]:
    """One entry per source, in first-seen order: {source, digest, documents, domains: {name: count}}."""
    by_source: dict[str, list[Document]] = {}
    for doc in documents:
        by_source.setdefault(doc.source, []).append(doc)
    entries = []
    for source, docs in by_source.items():
        domains: dict[str, int] = {}
        for doc in docs:
            domains[doc.domain] = domains.get(doc.domain, 0) + 1
        entries.append({"source": source, "digest": source_digest(docs), "documents": len(docs), "domains": domains})
    return entries
