"""The family registry: every `families/*.json` file, looked up by config `model_type`."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from emo_prune.arch.architecture import MoEArchitecture
from emo_prune.arch.family import FamilySpec, load_family_file
from emo_prune.errors import UnknownArchitectureError

FAMILIES_DIR = Path(__file__).parent / "families"


@lru_cache(maxsize=1)
def families() -> dict[str, FamilySpec]:
    """All known families by name."""
    found = {}
    for path in sorted(FAMILIES_DIR.glob("*.json")):
        family = load_family_file(path)
        found[family.name] = family
    return found


def supported_model_types() -> list[str]:
    return sorted(t for fam in families().values() for t in fam.model_types)


def family_for_model_type(model_type: str | None, where: str = "config.json") -> FamilySpec:
    if not model_type:
        raise UnknownArchitectureError(
            f"{where} has no 'model_type'; emo-prune needs it to know the MoE layout "
            f"(supported: {', '.join(supported_model_types())})"
        )
    for family in families().values():
        if model_type in family.model_types:
            return family
    raise UnknownArchitectureError(
        f"{where}: model_type {model_type!r} is not a supported MoE family "
        f"(supported: {', '.join(supported_model_types())}). To add one, describe its router, expert tensors and "
        f"config keys in a JSON file like emo_prune/arch/families/olmoe.json"
    )


def architecture_for_config(config: Mapping[str, Any], where: str = "config.json") -> MoEArchitecture:
    """Resolve a config.json dict to its family and per-layer layout."""
    family = family_for_model_type(config.get("model_type"), where)
    return MoEArchitecture.from_config(family, config)
