"""A model folder on disk in the Hugging Face layout, opened without loading weights.

    MODEL_DIR/
      config.json
      model.safetensors                      (single file), or
      model.safetensors.index.json           {"metadata": {...}, "weight_map": {name: shard file}}
      model-00001-of-0000N.safetensors ...
      tokenizer files, generation_config.json, ...

`Checkpoint.open` validates everything that can be checked from headers: the config parses, every
shard named in the index is a file inside the folder (`emo_prune.io.paths.contained_path`; symlinks
into the Hugging Face cache's blob store allowed), its header is valid safetensors, and every indexed
tensor is in its shard.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from emo_prune.arch import MoEArchitecture, architecture_for_config
from emo_prune.arch.architecture import layers_held
from emo_prune.arch.registry import family_for_model_type
from emo_prune.errors import CheckpointError, ConfigError
from emo_prune.io.model_files import model_folder, read_model_json
from emo_prune.io.paths import contained_path
from emo_prune.io.safetensors_header import ShardHeader, TensorInfo, read_header

CONFIG_FILE = "config.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def read_json(path: Path, what: str) -> Any:
    """A JSON file read as every model file is (`io.model_files`: a regular file, no link out of its folder)."""
    return read_model_json(path.parent, path.name, what)


@dataclass
class Checkpoint:
    path: Path
    config: dict[str, Any]
    weight_map: dict[str, str]  # tensor name -> shard file name (relative to path, inside it)
    shards: dict[str, ShardHeader] = field(repr=False)

    @classmethod
    def open(cls, path: str | Path) -> Checkpoint:
        path = model_folder(path)
        config_path = contained_path(path, CONFIG_FILE, "model config")
        if not config_path.exists():
            raise CheckpointError(f"{path} has no {CONFIG_FILE}; pass a Hugging Face model folder")
        config = read_model_json(path, CONFIG_FILE, "model config")
        if not isinstance(config, dict):
            raise CheckpointError(f"{config_path} must hold a JSON object")
        weight_map = cls._weight_map(path)
        shards = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = contained_path(path, shard, f"shard named in {path / INDEX_FILE}")
            if not shard_path.is_file():
                missing = sorted(n for n, s in weight_map.items() if s == shard)
                raise CheckpointError(
                    f"shard {shard} named in {path / INDEX_FILE} is missing ({len(missing)} tensors, e.g. {missing[0]!r})"
                )
            shards[shard] = read_header(shard_path)
        for name, shard in weight_map.items():
            if name not in shards[shard].tensors:
                raise CheckpointError(f"{path / INDEX_FILE} maps {name!r} to {shard}, but that shard does not hold it")
        return cls(path=path, config=config, weight_map=weight_map, shards=shards)

    @staticmethod
    def _weight_map(path: Path) -> dict[str, str]:
        index_path = contained_path(path, INDEX_FILE, "safetensors index")
        if index_path.exists():
            index = read_model_json(path, INDEX_FILE, "safetensors index")
            weight_map = index.get("weight_map") if isinstance(index, dict) else None
            if not isinstance(weight_map, dict) or not weight_map:
                raise CheckpointError(f"{index_path} has no 'weight_map'")
            bad = next((k for k, v in weight_map.items() if not isinstance(v, str)), None)
            if bad is not None:
                raise CheckpointError(f"{index_path}: weight_map[{bad!r}] must be a shard file name, got {weight_map[bad]!r}")
            return dict(weight_map)
        single = contained_path(path, SINGLE_FILE, "checkpoint file")
        if single.exists():
            return {name: SINGLE_FILE for name in read_header(single).tensors}
        others = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
        hint = f" (found {', '.join(others[:3])}: convert them to safetensors first)" if others else ""
        raise CheckpointError(f"{path} has neither {INDEX_FILE} nor {SINGLE_FILE}{hint}")

    # ---- facts --------------------------------------------------------------------------------
    @cached_property
    def architecture(self) -> MoEArchitecture:
        """The family and per-layer layout of config.json, its layer count first bounded by the layers the
        headers hold (a config claiming 10**9 layers is refused before any per-layer list is built)."""
        where = str(self.path / CONFIG_FILE)
        family = family_for_model_type(self.config.get("model_type"), where)
        key = family.config_keys["num_layers"]
        claimed, held = self.config.get(key), layers_held(family, self.weight_map)
        if isinstance(claimed, int) and not isinstance(claimed, bool) and claimed > held:
            raise ConfigError(
                f"{where}: {key} is {claimed}, but the checkpoint's tensors hold {held} layers; "
                f"fix {key} or restore the missing shards"
            )
        return architecture_for_config(self.config, where=where)

    @property
    def names(self) -> list[str]:
        return list(self.weight_map)

    def tensor(self, name: str) -> TensorInfo:
        try:
            return self.shards[self.weight_map[name]].tensors[name]
        except KeyError as exc:
            raise CheckpointError(f"tensor {name!r} is not in {self.path}") from exc

    def tensors(self) -> Iterator[TensorInfo]:
        for name, shard in self.weight_map.items():
            yield self.shards[shard].tensors[name]

    def shard_path(self, shard: str) -> Path:
        return self.shards[shard].path

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors())

    @property
    def dtypes(self) -> dict[str, int]:
        """safetensors dtype -> number of parameters stored in it."""
        out: dict[str, int] = {}
        for t in self.tensors():
            out[t.dtype] = out.get(t.dtype, 0) + t.numel
        return out
