"""The llama.cpp side of each MoE family, parsed from `gguf_archs.json` (architecture knowledge as data).

Fields, each checked against llama.cpp's graph of that architecture (src/models/<arch>.cpp):
  arch               llama.cpp architecture name written to `general.architecture`
  rope               "norm": the graph rotates consecutive pairs (2i, 2i+1), so q/k rows are permuted
                     from Hugging Face's rotate-half layout; "neox": halves, as Hugging Face (no permutation)
  qk_norm            null | "full" (RMSNorm over the whole q/k projection, OLMoE) | "head" (per head, Qwen3)
  renormalizes_topk  whether the graph divides the picked softmax weights by their sum (`norm_w`);
                     a model whose own routing differs is refused
  shared_expert      null | "tail" (EMO: the last expert of the pool, added with weight 1 as `*_shexp`)
                     | "sigmoid_gated" (Qwen2-MoE: its own module, scaled by sigmoid(gate . x))
  dense_layers       null (the graph has none) | "leading" (only the first layers, `leading_dense_block_count`)
  hparams            `<arch>.<key>` -> a named quantity of `emo_prune.export.metadata` or a literal number
  global / layer / dense_mlp / shared_mlp   GGUF tensor name -> Hugging Face name (layer names relative to
                     the layer prefix; `blk.{i}.` is prepended on the GGUF side). Names missing from a
                     checkpoint are skipped only where they are biases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from emo_prune.errors import ExportError

ARCHS_FILE = Path(__file__).parent / "gguf_archs.json"


@dataclass(frozen=True)
class GgufArch:
    family: str
    arch: str
    rope: str
    qk_norm: str | None
    renormalizes_topk: bool
    shared_expert: str | None
    dense_layers: str | None
    hparams: dict[str, Any]
    global_tensors: dict[str, str]
    layer_tensors: dict[str, str]
    dense_mlp: dict[str, str] | None
    shared_mlp: dict[str, str] | None

    @property
    def permutes_qk(self) -> bool:
        return self.rope == "norm"


@lru_cache(maxsize=1)
def gguf_archs() -> dict[str, GgufArch]:
    data = json.loads(ARCHS_FILE.read_text())
    found = {}
    for family, entry in data.items():
        if family.startswith("_"):
            continue
        found[family] = GgufArch(
            family=family,
            arch=entry["arch"],
            rope=entry["rope"],
            qk_norm=entry["qk_norm"],
            renormalizes_topk=bool(entry["renormalizes_topk"]),
            shared_expert=entry["shared_expert"],
            dense_layers=entry["dense_layers"],
            hparams=dict(entry["hparams"]),
            global_tensors=dict(entry["global"]),
            layer_tensors=dict(entry["layer"]),
            dense_mlp=entry["dense_mlp"],
            shared_mlp=entry["shared_mlp"],
        )
    return found


def gguf_arch_for(family: str) -> GgufArch:
    archs = gguf_archs()
    if family not in archs:
        raise ExportError(
            f"family {family!r} has no GGUF mapping (known: {', '.join(sorted(archs))}); describe it in {ARCHS_FILE}"
        )
    return archs[family]


def arch_by_name(arch: str) -> GgufArch:
    """The mapping whose llama.cpp architecture is `arch` (what a GGUF file's general.architecture says)."""
    for entry in gguf_archs().values():
        if entry.arch == arch:
            return entry
    raise ExportError(
        f"GGUF architecture {arch!r} was not written by emo-prune (known: {', '.join(a.arch for a in gguf_archs().values())})"
    )
