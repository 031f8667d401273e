"""What a recipe's `model:` names: a local folder, `builtin:NAME`, or a Hugging Face Hub id.

Built-in models are a small registry: a factory-made one is written once into
`$EMO_PRUNE_CACHE/models/<name>-v<version>/` (atomically, reused when present); a bundled one is a
folder inside the package. A Hub id resolves through the local Hugging Face cache only when offline
(HF_HUB_OFFLINE=1), and is otherwise downloaded by huggingface_hub.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emo_prune.errors import CheckpointError
from emo_prune.io.identity import cache_dir

BUILTIN_PREFIX = "builtin:"
# "org/name": what the Hub accepts as a model id (and what a relative path to nothing would look like)
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class BuiltinModel:
    """`build(folder)` writes the model into an empty folder; or `bundled` names a finished folder."""

    name: str
    description: str
    version: int = 1
    build: Callable[[Path], Any] | None = None
    bundled: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def materialize(self) -> Path:
        if self.bundled is not None:
            if not (self.bundled / "config.json").exists():
                raise CheckpointError(f"built-in model {self.name!r} is missing from this installation ({self.bundled})")
            return self.bundled
        from emo_prune.io.atomic import AtomicFolder

        target = cache_dir() / "models" / f"{self.name}-v{self.version}"
        if (target / "config.json").exists():
            return target
        with AtomicFolder(target, overwrite=target.exists()) as tmp:
            self.build(tmp)  # type: ignore[misc]
        return target


TINY_EMO = dict(layers=4, hidden=128, heads=4, kv_heads=2, experts=32, shared=1, top_k=4, expert_width=64, seed=0)


def _tiny_emo(folder: Path) -> None:
    from emo_prune.testing import write_tiny_model

    write_tiny_model(folder, "emo", **TINY_EMO)


BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "models"  # written by examples/experiments/train_small_moe.py

BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel(
            name="emo-small",
            description="trained here with the EMO objective on builtin code/prose/math: 4 layers, hidden 128, "
            "64 experts (1 shared), top-4, bf16",
            bundled=BUNDLED / "emo-small",
        ),
        BuiltinModel(
            name="stdmoe-small",
            description="the standard-MoE twin of emo-small (same data, seed, sizes and steps; token-level top-k)",
            bundled=BUNDLED / "stdmoe-small",
        ),
        BuiltinModel(
            name="tiny-emo",
            description="factory-made random EMO: 4 layers, hidden 128, 32 experts (1 shared), top-4",
            build=_tiny_emo,
            settings=TINY_EMO,
        ),
    )
}


def did_you_mean(spec: str) -> str:
    """ "; did you mean builtin:emo-small?" when `spec` (a path's last part, or a built-in name typed with
    a mistake) is close to a built-in model's name; "" otherwise."""
    import difflib

    name = str(spec).rstrip("/").removeprefix(BUILTIN_PREFIX).rsplit("/", 1)[-1]
    close = difflib.get_close_matches(name, list(BUILTIN_MODELS), n=1, cutoff=0.75)
    return f"; did you mean {BUILTIN_PREFIX}{close[0]}?" if close else ""


def is_hub_id(spec: str) -> bool:
    return bool(_HUB_ID.match(spec)) and not Path(spec).exists()


def resolve_model(spec: str | Path) -> Path:
    """The local folder that `spec` names, materialized or fetched as needed; CheckpointError otherwise."""
    text = str(spec)
    if text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX) :]
        if name not in BUILTIN_MODELS:
            known = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)
            raise CheckpointError(f"unknown built-in model {text!r}; built-in: {known}{did_you_mean(text)}")
        return BUILTIN_MODELS[name].materialize()
    path = Path(text).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise CheckpointError(f"{path} is not a model folder (no config.json)")
        return path
    if is_hub_id(text):
        return _from_hub(text)
    raise CheckpointError(
        f"model folder not found: {path} (a model is a folder, builtin:NAME or a Hub id org/name){did_you_mean(text)}"
    )


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.py", "*.txt", "*.model"]))
    except LocalEntryNotFoundError as exc:
        raise CheckpointError(
            f"{repo_id!r} is neither a local folder nor in the Hugging Face cache, and the Hub is unreachable "
            f"(offline); download it where there is network (`hf download {repo_id}`) and pass its folder"
        ) from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot fetch {repo_id!r} from the Hugging Face Hub: {exc}") from exc
