"""Calibration text: sources (files, folders, Hugging Face, lm-eval tasks) and built-in offline corpora.

Public API (used by profiling and by greedy selection):
  Document(text, domain, source)                 one calibration document (frozen)
  load_documents(sources, domains, *, seed, split) -> list[Document]
  source_digest(documents) / describe_sources(documents)   what a profile records about its sources
  split_of(text) -> "train" | "calib" | "heldout"  stable split by a hash of the text
"""

from emo_prune.calib.document import HELDOUT_FRACTION, SPLITS, Document, describe_sources, source_digest, split_of
from emo_prune.calib.sources import BUILTINS, SourceSpec, builtin_calibration, builtin_texts, load_documents, parse_source

__all__ = [
    "BUILTINS",
    "HELDOUT_FRACTION",
    "SPLITS",
    "Document",
    "SourceSpec",
    "builtin_calibration",
    "builtin_texts",
    "describe_sources",
    "load_documents",
    "parse_source",
    "source_digest",
    "split_of",
]
