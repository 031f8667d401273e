"""Reading what a model folder names: config, generation config, tokenizer files, chat templates.

One rule for every command, the one `extract` applies to the files it copies: a file is read only when
it is a regular file inside the folder (`contained_path`: no absolute path, no `..`, no symlink leaving
the folder, except into the Hugging Face cache's blob store), checked on the open descriptor (so no
swap between check and read), and never a FIFO, device or socket (opened non-blocking, so a FIFO
cannot hang the check).

transformers' loaders (`AutoTokenizer`, `AutoConfig`, `GenerationConfig`) open the files they want by
themselves, and which files a tokenizer reads depends on its class (vocab.json, merges.txt,
tokenizer.model, chat_template.jinja, additional_chat_templates/...). Rather than keep a list of those
names in step with transformers, `staged_files` copies every non-weight file of the folder, each read
through the rule above, into a private temporary folder and transformers loads from there: it can only
ever see bytes that passed the check, whatever file names it looks for.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emo_prune.errors import CheckpointError
from emo_prune.io.paths import contained_path, inside

# files no loader of ours hands to transformers' file-name based loaders (weights are read from headers)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")
CHAT_TEMPLATES_DIR = "additional_chat_templates"  # transformers 5 reads named templates from this folder
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def model_folder(model_dir: str | Path) -> Path:
    """`model_dir` when it is an existing folder, else CheckpointError naming it."""
    path = Path(model_dir)
    if not path.exists():
        raise CheckpointError(f"model folder not found: {path}")
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a folder; pass the folder that holds config.json")
    return path


def _not_regular(path: Path, mode: int, what: str) -> CheckpointError:
    kind = "a folder" if stat.S_ISDIR(mode) else _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return CheckpointError(
        f"{what} {path} is {kind}; only regular files are read from a model folder, replace it with the real file"
    )


def open_regular(path: Path, what: str) -> int:
    """A read-only descriptor of `path` once it is known to be a regular file: checked before the open (opening
    some devices has effects of its own) and again on the descriptor (the name may change in between)."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode, what)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{what} not found: {path}") from exc
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode, what)
    os.set_blocking(fd, True)
    return fd


def read_model_bytes(model_dir: Path, name: str, what: str) -> bytes:
    """The bytes of `model_dir/name`, a regular file inside the folder (see the module docstring)."""
    path = contained_path(model_dir, name, what)
    fd = open_regular(path, what)
    try:
        held = os.fstat(fd)
        target = path.resolve()
        same = target.exists() and os.path.samestat(held, target.stat())
        if not same or not inside(model_dir, target):  # the name changed between the check and the open
            raise CheckpointError(f"{what} {path} changed while it was opened; refusing to read it")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def read_model_json(model_dir: Path, name: str, what: str) -> Any:
    """`model_dir/name` parsed as JSON, read through `read_model_bytes`."""
    raw = read_model_bytes(model_dir, name, what)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{what} {model_dir / name} is not valid JSON: {exc}") from exc


def side_files(model_dir: Path) -> list[Path]:
    """Every top-level non-weight, non-hidden file of the folder, each checked as `read_model_bytes` checks
    it (inside the folder, a regular file); sub-folders are not side files."""
    found = []
    for p in sorted(model_dir.iterdir()):
        if p.name.startswith(".") or p.name.endswith(WEIGHT_SUFFIXES):
            continue
        target = contained_path(model_dir, p.name, "side file")
        try:
            mode = target.stat().st_mode
        except OSError:
            continue  # a dangling link names no file: nothing to read
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            raise _not_regular(p, mode, "side file")
        found.append(p)
    return found


@contextmanager
def staged_files(model_dir: str | Path, only: tuple[str, ...] | None = None) -> Iterator[Path]:
    """A private temporary folder holding a checked copy of every side file of `model_dir` (config,
    generation config, tokenizer files, chat templates), or of the side files named in `only`: what
    transformers' loaders are pointed at. Deleted on exit."""
    model_dir = model_folder(model_dir)
    with tempfile.TemporaryDirectory(prefix="emo-prune-files-") as private:
        staged = Path(private)
        for p in side_files(model_dir):
            if only is None or p.name in only:
                (staged / p.name).write_bytes(read_model_bytes(model_dir, p.name, "side file"))
        templates = model_dir / CHAT_TEMPLATES_DIR
        if only is None and templates.is_dir():
            contained_path(model_dir, CHAT_TEMPLATES_DIR, "chat templates folder")
            (staged / CHAT_TEMPLATES_DIR).mkdir()
            for p in side_files(templates):
                data = read_model_bytes(templates, p.name, "chat template")
                (staged / CHAT_TEMPLATES_DIR / p.name).write_bytes(data)
        yield staged
