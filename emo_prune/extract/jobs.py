"""The list of output tensors of an extraction, each with the source bytes it is made of.

Shapes: E experts in a source layer, K kept, H hidden, I expert width.
  router [E, H] and router vectors [E]       -> rows of the kept ids, in plan order   [K, H] / [K]
  fused gate_up [E, 2I, H] / down [E, H, I]  -> rows of the kept ids, in plan order   [K, 2I, H] / [K, H, I]
  per-expert tensors of expert e             -> kept: renamed to its new id; dropped: never read
  everything else                            -> copied under the same name
Which tensor is which comes from the tensor inventory (`emo_prune.io.inventory`, the map `inspect`
shows), built once and checked against the config; a name it does not list is copied as it is.
Jobs follow the source's byte order (shard by shard, by offset), so reads are sequential, and the
output order, hence every output byte, is a pure function of the source and the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from emo_prune.arch import MoEArchitecture
from emo_prune.io import Checkpoint, LayerTensors
from emo_prune.io.ranges import TensorBytes, tensor_bytes
from emo_prune.io.shards import TensorSpec
from emo_prune.select.plan import Kept

CONVERTIBLE = ("F64", "F32", "F16", "BF16")  # --dtype converts these; ints and fp8 stay as they are


@dataclass(frozen=True)
class Job:
    spec: TensorSpec  # the output tensor
    source: TensorBytes  # where its bytes come from
    moe: bool = False  # kept router / expert bytes of an MoE layer (what `finite` scans for NaN / Inf)


def _moe_tensors(
    arch: MoEArchitecture, inventory: list[LayerTensors], kept: Kept
) -> tuple[dict[str, list[int]], dict[str, str | None]]:
    """From the inventory: the tensors cut to their kept rows (name -> kept ids, plan order) and the
    per-expert tensors (name -> its name under the expert's new id; None for a dropped expert)."""
    rows: dict[str, list[int]] = {}
    renamed: dict[str, str | None] = {}
    for entry, ids in zip(inventory, kept, strict=True):
        if ids is None or entry.router is None:  # a dense layer: its MLP is copied like any other tensor
            continue
        for name in (entry.router, *entry.router_vectors, *entry.fused.values()):
            rows[name] = ids
        new_ids = {old: new for new, old in enumerate(ids)}
        for expert, projections in entry.per_expert.items():
            new = new_ids.get(expert)
            for projection, name in projections.items():
                renamed[name] = None if new is None else arch.per_expert_key(entry.index, new, projection)
    return rows, renamed


def build_jobs(checkpoint: Checkpoint, inventory: list[LayerTensors], kept: Kept, out_dtype: str | None = None) -> list[Job]:
    """`inventory`: `build_inventory(checkpoint)`; `kept`: the validated plan's ids per layer."""
    rows, renamed = _moe_tensors(checkpoint.architecture, inventory, kept)
    order = sorted(checkpoint.weight_map.items(), key=lambda item: (item[1], checkpoint.tensor(item[0]).begin))
    jobs = []
    for name, _shard in order:
        info = checkpoint.tensor(name)
        ids = rows.get(name)  # router / router vector / fused: only the kept rows
        out_name = renamed.get(name, name)  # a per-expert tensor: its name under the new id
        if out_name is None:
            continue  # a dropped expert: not read, not written
        shape = info.shape if ids is None else (len(ids), *info.shape[1:])
        dtype = out_dtype if out_dtype is not None and info.dtype in CONVERTIBLE else info.dtype
        moe = ids is not None or name in renamed
        jobs.append(Job(TensorSpec(out_name, dtype, tuple(shape)), tensor_bytes(checkpoint, name, ids), moe))
    return jobs
