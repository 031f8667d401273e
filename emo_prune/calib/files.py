"""Calibration text from local files: JSONL / JSON records, or .txt / .md files (one file = one document).

JSONL: one JSON object per line with a string field `text` and an optional string field `domain`.
JSON: a list of such objects (or an object whose "data" field is that list).
Text files: the whole file is one document; its domain is the name of the folder that holds it, so a
tree `calib/code/*.py.txt`, `calib/math/*.md` gives domains "code" and "math".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from emo_prune.calib.document import Document
from emo_prune.errors import CalibrationError
from emo_prune.io.text import read_text

TEXT_SUFFIXES = (".txt", ".md")
RECORD_SUFFIXES = (".jsonl", ".json")


def _read_text(path: Path) -> str:
    return read_text(path, CalibrationError, "calibration file")


def _record(obj: Any, where: str, default_domain: str, source: str) -> Document:
    if not isinstance(obj, dict):
        raise CalibrationError(f"{where}: expected a JSON object with a 'text' field, got {type(obj).__name__}")
    text = obj.get("text")
    if not isinstance(text, str):
        raise CalibrationError(f"{where}: field 'text' is missing or not a string (fields: {', '.join(obj) or 'none'})")
    domain = obj.get("domain", default_domain)
    if not isinstance(domain, str) or not domain:
        raise CalibrationError(f"{where}: field 'domain' must be a non-empty string, got {domain!r}")
    return Document(text=text, domain=domain, source=source)


def read_jsonl(path: Path, default_domain: str, source: str) -> list[Document]:
    docs = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CalibrationError(
                f"{path}:{number} is not JSON Lines ({exc.msg}); each line must be one JSON object like "
                f'{{"text": "...", "domain": "code"}}'
            ) from exc
        docs.append(_record(obj, f"{path}:{number}", default_domain, source))
    return docs


def read_json(path: Path, default_domain: str, source: str) -> list[Document]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise CalibrationError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); use a list of objects with 'text'"
        ) from exc
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise CalibrationError(f"{path} must hold a JSON list of objects with a 'text' field (or {{\"data\": [...]}})")
    return [_record(obj, f"{path}[{i}]", default_domain, source) for i, obj in enumerate(data)]


def read_text_tree(root: Path, domain: str | None, source: str) -> list[Document]:
    """Every .txt / .md file under `root` (sorted walk); domain = `domain` or each file's folder name."""
    if root.is_file():
        paths = [root]
    else:
        paths = []
        for folder, dirnames, filenames in os.walk(root):
            dirnames.sort()
            paths.extend(Path(folder) / name for name in sorted(filenames) if name.endswith(TEXT_SUFFIXES))
    return [Document(text=_read_text(p), domain=domain or p.resolve().parent.name, source=source) for p in paths]


def read_path(path: Path, domain: str | None, source: str) -> list[Document]:
    if not path.exists():
        raise CalibrationError(f"calibration source {path} does not exist")
    if path.is_dir():
        return read_text_tree(path, domain, source)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path, domain or path.stem, source)
    if suffix == ".json":
        return read_json(path, domain or path.stem, source)
    if suffix in TEXT_SUFFIXES:
        return read_text_tree(path, domain, source)
    raise CalibrationError(
        f"{path}: unsupported calibration file type {suffix or '(none)'!r}; use .jsonl, .json, .txt, .md or a folder of "
        f"text files, or builtin:code|prose|math, hf:NAME, task:NAME"
    )
