"""Artifacts: the files emo-prune writes and owns besides models, written atomically, refused over a
stranger's file, and read back as untrusted input. Two formats:

    ArtifactKind   statistics (a profile, a pool index): safetensors with one JSON metadata entry
    ReportKind     reports (eval's RESULTS.json, a run's report.json): a JSON document, its Markdown
                   table beside it (RESULTS.md, report.md)

A statistics artifact is a safetensors file whose `__metadata__` holds one entry, under its kind's key
("emo_prune.profile", "emo_prune.pool_index"): the JSON of the artifact's metadata, sorted keys, with
the format version as its "format" field. Nothing else goes into the header, so files written before
this module existed and files written now are the same bytes.

The key is also the ownership check: an existing output is replaced (with `--overwrite`) only when its
header carries the kind's key (`recognise`, headers only), never a stranger's file
(`io.atomic.write_output`).

Read order matters: the header is validated first (`read_header`: a regular file, well-formed entries,
`__metadata__` a str -> str map), the key looked up and the format checked before any tensor is
decoded, so a model shard passed by mistake is named as "not a profile" instead of failing in a dtype
numpy lacks (bf16), and a file from a newer emo-prune is named as such.

A JSON file is emo-prune's report of a kind when it is an object holding the kind's keys
(`ReportKind.keys`): nothing else marks it, so files written before this module existed are recognised
and files written now are the same bytes. The .md belongs to the .json beside it: it is replaced only
where that .json is one of ours, never beside a stranger's. Both are written under the .json's lock
(`io.lock`), each atomically (`io.atomic`), and refused without `overwrite` when they exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from emo_prune.errors import CheckpointError, EmoPruneError, OutputError
from emo_prune.io.atomic import atomic_write_text, check_output_file, write_output
from emo_prune.io.lock import FolderLock
from emo_prune.io.safetensors_header import read_header

_SAVERS = {"np": "safetensors.numpy", "pt": "safetensors.torch"}  # framework -> the module that serializes it


@dataclass(frozen=True)
class ArtifactKind:
    key: str  # the `__metadata__` entry that holds the JSON, and names the kind
    what: str  # "profile", "pool index": how messages name a file of the kind
    formats: tuple[int, ...]  # the format versions this emo-prune reads; the last is the one it writes
    framework: str  # "np" | "pt": tensors are numpy arrays or torch tensors (a profile never needs torch)
    error: type[EmoPruneError]  # what a bad file raises
    rebuild: str  # how to make a good file: "profile the model again (emo-prune profile)"

    @property
    def label(self) -> str:
        return f"an emo-prune {self.what}"

    @property
    def format(self) -> int:
        return self.formats[-1]

    # ---- write ----------------------------------------------------------------------------------
    def recognise(self, path: Path) -> bool:
        """A safetensors file whose header carries this kind's key (headers only: cheap)."""
        try:
            return self.key in read_header(path).metadata
        except CheckpointError:
            return False

    def check_output(self, out: Path, overwrite: bool) -> None:
        """Refuse an unusable --out before any work: a folder, an existing file without --overwrite, or an
        existing file that is not of this kind (never replaced)."""
        check_output_file(out, overwrite=overwrite, recognise=self.recognise, what=self.label)

    def write(
        self, path: str | Path, tensors: dict[str, Any], meta: dict[str, Any], *, overwrite: bool, lock: FolderLock | None = None
    ) -> Path:
        """`tensors` (name -> contiguous array of `framework`) and `meta` (JSON-able; its "format" is set to
        this emo-prune's) written to `path` under its lock, atomically; an existing file is replaced only
        when it is of this kind and `overwrite`."""
        save = import_module(_SAVERS[self.framework]).save  # imported on use: a profile never loads torch
        data = save(tensors, metadata={self.key: json.dumps({**meta, "format": self.format}, sort_keys=True)})
        return write_output(
            path, lambda f: f.write(data), overwrite=overwrite, recognise=self.recognise, what=self.label, lock=lock
        )

    # ---- read -----------------------------------------------------------------------------------
    def read(self, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the metadata, every tensor) of the file at `path`, or `error` naming it: a readable file of
        this kind in a format this emo-prune reads. The metadata's other fields are the caller's to check."""
        from safetensors import safe_open

        if not path.exists():
            raise self.error(f"{self.what} not found: {path}")
        try:
            header = read_header(path)
        except CheckpointError as exc:
            raise self.error(f"{path} is not a readable {self.what}: {exc}") from None
        raw = header.metadata.get(self.key)
        if raw is None:
            model = " (it looks like model weights)" if header.tensors and "format" in header.metadata else ""
            raise self.error(
                f"{path} is not an emo-prune {self.what}: its header has no {self.key} metadata{model}; "
                f"pass the {self.what} file emo-prune wrote, or {self.rebuild}"
            )
        try:
            meta = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise self.error(f"{path}: its {self.key} metadata is not valid JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") not in self.formats:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise self.error(f"{path} has {self.what} format {found}, this emo-prune reads formats {self.formats}")
        try:
            with safe_open(str(path), framework=self.framework) as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise self.error(f"{path} is not a readable {self.what}: {reason}") from None
        return meta, tensors


@dataclass(frozen=True)
class ReportKind:
    keys: frozenset[str]  # top-level keys every report of the kind holds: how emo-prune tells its own file
    what: str  # "emo-prune results": how messages name the kind
    error: type[EmoPruneError] = OutputError  # what a refusal raises

    def recognise(self, path: Path) -> bool:
        """An existing JSON file that holds this kind's keys (so a rerun may replace it and its .md)."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError):
            return False
        return isinstance(data, dict) and self.keys <= data.keys()

    def check_output(self, path: Path, overwrite: bool) -> None:
        """Refuse before any work: the .json or its .md a folder or special file, a stranger's .json (or a
        .md beside one), or either existing without `overwrite`."""
        check_output_file(path, overwrite=overwrite, recognise=self.recognise, what=f"an {self.what} file", error=self.error)
        md = markdown_path(path)
        if md.exists() and not self.recognise(path):
            raise self.error(f"{md} exists and does not belong to {self.what}; refusing to replace it")
        # the .md is ours when the .json is (checked above)
        check_output_file(md, overwrite=overwrite, recognise=lambda _md: True, what=f"a table of {self.what}", error=self.error)

    def write(
        self, path: Path, document: dict[str, Any], markdown: str, *, overwrite: bool, lock: FolderLock | None = None
    ) -> tuple[Path, Path]:
        """`document` as PATH (indented JSON) and `markdown` as PATH.md, under PATH's lock (`lock`: that
        lock, when the caller took it before its long work). Returns (json path, md path)."""
        md = markdown_path(path)
        with lock or FolderLock(path):
            self.check_output(path, overwrite)
            atomic_write_text(path, json.dumps(document, indent=2, default=str) + "\n", replace=overwrite)
            atomic_write_text(md, markdown, replace=overwrite)
        return path, md


def markdown_path(path: Path) -> Path:
    """RESULTS.json -> RESULTS.md: the table beside its document."""
    return path.with_suffix(".md")
