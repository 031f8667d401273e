"""Calibration sources: parse a SOURCE spec, load its documents, select domains and splits.

SOURCE forms (optionally prefixed `DOMAIN=` to name the domain of every document it gives):
  path.jsonl | path.json     records with `text` (and optional `domain`, default: the file stem)
  path.txt | path.md | DIR   one file = one document; domain = the folder holding the file
  builtin:code|prose|math[:train|calib|heldout]   offline corpora (domain = the corpus name)
  hf:NAME[:CONFIG][:SPLIT]   a Hugging Face dataset with a `text` column (domain = last part of NAME)
  task:LM_EVAL_TASK[:validation|train]   few-shot prompt + gold answer of the task's validation docs (the
                             default) or training docs (what AI2 fine-tunes on), never its test docs; a name
                             (ours, then lm-eval's; domain = the name) or a task YAML file's path (domain = its stem)
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from emo_prune import events
from emo_prune.calib.builtin_code import code_texts
from emo_prune.calib.builtin_math import math_texts
from emo_prune.calib.builtin_prose import prose_texts
from emo_prune.calib.document import SPLITS, Document, domain_problem, is_domain, split_of
from emo_prune.calib.files import read_path
from emo_prune.calib.remote import TASK_SPLITS, hf_texts, task_texts
from emo_prune.common.lmeval_tasks import is_task_file
from emo_prune.errors import CalibrationError

BUILTINS = ("code", "prose", "math")
# DOMAIN=SOURCE: anything before the first '=' that holds no '/' or ':' is meant as a domain name (then
# checked against the domain alphabet, so a bad one is named rather than read as a missing file)
_DOMAIN_PREFIX = re.compile(r"([^=/:]+)=(.+)", re.DOTALL)
_RENAME = "; name the domain with DOMAIN=SOURCE"


@dataclass(frozen=True)
class SourceSpec:
    spec: str  # as the user wrote it
    kind: str  # path | builtin | hf | task
    target: str
    domain: str | None = None
    split: str | None = None  # builtin: train/calib/heldout; hf: the dataset split; task: validation/train
    config: str | None = None  # hf dataset config


def parse_source(spec: str) -> SourceSpec:
    if not spec or not spec.strip():
        raise CalibrationError("empty calibration source; pass a file, a folder, builtin:NAME, hf:NAME or task:NAME")
    domain = None
    match = _DOMAIN_PREFIX.fullmatch(spec)
    if match and not Path(spec).exists():
        domain, rest = match.group(1), match.group(2)
        if not is_domain(domain):
            raise CalibrationError(domain_problem(domain, f"calibration source {spec!r}"))
    else:
        rest = spec
    if rest.startswith("builtin:"):
        parts = rest.split(":")
        if len(parts) > 3 or parts[1] not in BUILTINS or (len(parts) == 3 and parts[2] not in SPLITS):
            raise CalibrationError(
                f"unknown built-in corpus {rest!r}; use builtin:{'|'.join(BUILTINS)} optionally followed by :train, :calib or :heldout"
            )
        return SourceSpec(spec, "builtin", parts[1], domain, parts[2] if len(parts) == 3 else None)
    if rest.startswith("hf:"):
        parts = rest[3:].split(":")
        if not parts[0] or len(parts) > 3:
            raise CalibrationError(f"bad Hugging Face source {rest!r}; use hf:NAME[:CONFIG][:SPLIT]")
        config = parts[1] or None if len(parts) > 1 else None
        split = parts[2] or None if len(parts) > 2 else None
        return SourceSpec(spec, "hf", parts[0], domain, split, config)
    if rest.startswith("task:"):
        name, split = _task_split(rest[5:])
        if not name:
            raise CalibrationError("task: needs an lm-eval task name, e.g. task:arc_easy")
        return SourceSpec(spec, "task", name, domain, split)
    return SourceSpec(spec, "path", rest, domain)


def _task_split(target: str) -> tuple[str, str]:
    """task:gsm8k:train -> ("gsm8k", "train"); task:gsm8k -> ("gsm8k", "validation"); the test split is refused."""
    name, sep, suffix = target.rpartition(":")
    if not sep:
        return target, "validation"
    if suffix in TASK_SPLITS:
        return name, suffix
    if suffix == "test":
        raise CalibrationError(
            f"task:{target}: the test split is for scoring, never for calibration or training; use "
            f"task:{name}:{' or :'.join(TASK_SPLITS)}"
        )
    return target, "validation"  # a colon of the name's own


def builtin_texts(name: str, seed: int) -> list[str]:
    """The corpus' texts in a seeded order (so a --max-tokens prefix is a seeded sample)."""
    if name == "math":
        return math_texts(seed)
    texts = code_texts() if name == "code" else prose_texts()
    random.Random(f"emo-prune builtin:{name} {seed}").shuffle(texts)
    return texts


def builtin_calibration(domains: list[str] | tuple[str, ...]) -> list[str]:
    """The built-in corpus's calibration split of each domain: ["code"] -> ["builtin:code:calib"]."""
    unknown = [d for d in domains if d not in BUILTINS]
    if not domains or unknown:
        what = f"no built-in corpus for domain {unknown[0]!r}" if unknown else "no calibration text and no domain given"
        raise CalibrationError(
            f"{what}; name a built-in domain ({', '.join(BUILTINS)}) with --domain, or give calibration text with --calib"
        )
    return [f"builtin:{d}:calib" for d in domains]


def _load_one(src: SourceSpec, seed: int) -> list[Document]:
    if src.kind == "path":
        return read_path(Path(src.target), src.domain, src.spec)
    if src.kind == "builtin":
        texts = builtin_texts(src.target, seed)
        if src.split:
            texts = [t for t in texts if split_of(t) == src.split]
        if not texts:
            raise CalibrationError(f"{src.spec}: the built-in corpus is empty on this Python installation")
        domain = src.domain or src.target
    elif src.kind == "hf":
        texts, domain = hf_texts(src.target, src.config, src.split), src.domain or src.target.rsplit("/", 1)[-1]
    else:
        name = Path(src.target).stem if is_task_file(src.target) else src.target
        texts, domain = task_texts(src.target, src.split or "validation"), src.domain or name
    return [Document(text=t, domain=domain, source=src.spec) for t in texts]


def load_documents(
    sources: list[str], domains: list[str] | None = None, *, seed: int = 0, split: str | None = None
) -> list[Document]:
    """All non-empty documents of `sources`, in source order, restricted to `domains` and `split`.

    Raises CalibrationError for no sources, a missing / malformed / unreachable source, a source with
    no document, an invalid domain name, or a requested domain that no source provides.
    """
    if not sources:
        raise CalibrationError("no calibration source given; pass --calib FILE|DIR|builtin:code|hf:NAME|task:NAME")
    if split is not None and split not in SPLITS:
        raise CalibrationError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    documents: list[Document] = []
    for spec in sources:
        parsed = parse_source(spec)
        if parsed.kind == "builtin" and parsed.split is None and split is None:
            events.warn(
                f"{spec} has no split: it includes the held-out text the offline eval tasks score; "
                f"profile on {spec}:calib (or :train) to keep the eval honest"
            )
        docs = [d for d in _load_one(parsed, seed) if d.text.strip()]
        if not docs:
            raise CalibrationError(f"calibration source {spec} holds no non-empty document")
        documents.extend(docs)
    for domain in domains or ():
        if not is_domain(domain):
            raise CalibrationError(domain_problem(domain, "--domain"))
    for doc in documents:
        if not is_domain(doc.domain):
            raise CalibrationError(domain_problem(doc.domain, f"calibration source {doc.source!r}") + _RENAME)
    if split is not None:
        documents = [d for d in documents if split_of(d.text) == split]
    found = list(dict.fromkeys(d.domain for d in documents))
    if domains:
        missing = [d for d in domains if d not in found]
        if missing:
            raise CalibrationError(
                f"domain {missing[0]!r} has no documents in the calibration sources (domains found: {', '.join(found) or 'none'})"
            )
        documents = [d for d in documents if d.domain in set(domains)]
    if not documents:
        raise CalibrationError(f"the calibration set is empty (split {split}): no documents to profile")
    return documents
