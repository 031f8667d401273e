"""The list of output tensors of an extraction, each with the source bytes it is made of.

Shapes: E experts in a source layer, K kept, H hidden, I expert width.
  router [E, H] and router vectors [E]       -> rows of the kept ids, in plan order   [K, H] / [K]
  fused gate_up [E, 2I, H] / down [E, H, I]  -> rows of the kept ids, in plan order   [K, 2I, H] / [K, H, I]
  per-expert tensors of expert e             -> kept: renamed to its new id; dropped: never read
  everything else                            -> copied under the same name
Jobs follow the source's byte order (shard by shard, by offset), so reads are sequential, and the
output order, hence every output byte, is a pure function of the source and the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from emo_prune.io import Checkpoint, contiguous_runs
from emo_prune.io.shards import TensorSpec
from emo_prune.extract.source import ByteSource
from emo_prune.select.plan import Kept

CONVERTIBLE = ("F64", "F32", "F16", "BF16")  # --dtype converts these; ints and fp8 stay as they are


@dataclass(frozen=True)
class Job:
    spec: TensorSpec  # the output tensor
    source: ByteSource  # where its bytes come from


def build_jobs(checkpoint: Checkpoint, kept: Kept, out_dtype: str | None = None) -> list[Job]:
    arch = checkpoint.architecture
    index_maps = [None if ids is None else {old: new for new, old in enumerate(ids)} for ids in kept]
    order = sorted(checkpoint.weight_map.items(), key=lambda item: (item[1], checkpoint.tensor(item[0]).begin))
    jobs = []
    for name, shard in order:
        info = checkpoint.tensor(name)
        base = checkpoint.shards[shard].data_start + info.begin
        path = str(checkpoint.shard_path(shard))
        role = arch.classify(name)
        ids = kept[role.layer] if role.layer is not None else None
        out_name, shape, ranges = name, info.shape, ((base, info.nbytes),)
        if role.kind in ("router", "router_vector", "fused") and ids is not None:
            row = info.nbytes // info.shape[0]
            ranges = tuple((base + start * row, (stop - start) * row) for start, stop in contiguous_runs(ids))
            shape = (len(ids), *info.shape[1:])
        elif role.kind == "expert" and ids is not None:
            new_id = index_maps[role.layer].get(role.expert)  # type: ignore[index, union-attr]
            if new_id is None:
                continue  # a dropped expert: not read, not written
            out_name = arch.per_expert_key(role.layer, new_id, role.projection)  # type: ignore[arg-type]
        dtype = out_dtype if out_dtype is not None and info.dtype in CONVERTIBLE else info.dtype
        jobs.append(Job(TensorSpec(out_name, dtype, tuple(shape)), ByteSource(path, ranges, info.dtype, name)))
    return jobs
