"""`merge-back`: the FULL model with a fine-tuned build's experts written back at their original ids.

Shapes: E experts of a FULL layer, K kept by the build (its manifest's ids, plan order: build row j is FULL
expert kept[j]), H hidden, I expert width.
  fused gate_up [E, 2I, H] / down [E, H, I]   rows kept[j] <- build rows j      (routed experts; shared
                                                                                 tail rows with --shared)
  per-expert gate/up [I, H], down [H, I]      expert kept[j] <- build expert j  (same rule; a fused build's
                                                                                 row j is cut into gate | up)
  router [E, H] / router vectors [E]          rows kept[j] <- build rows j      (--router)
  separate shared expert (Qwen2-MoE)          whole tensors <- build            (--shared)
  everything else (attention, norms, embeddings, head)   <- build               (--all)
  whatever is not taken from the build        the FULL model's bytes, copied through the kernel
With `alpha` < 1 a taken tensor is (1 - alpha) x FULL + alpha x build (AI2's averaging), in float32, then the
FULL tensor's dtype. Taken from the build at alpha 1, router and shared included, the merged model with
the dropped experts' router logits at -inf is the fine-tuned build (what `verify MERGED BUILD` checks).

Streamed like `extract`: tensors in FULL's byte order, one output tensor in memory at a time (a layer's
stacked experts at most) besides the open shard of each model, written by the sharded writer into an
atomic folder. Refused before anything is written: a build without a manifest, or one whose manifest
names another source model (its recorded sha256 identity against FULL's).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from emo_prune import events
from emo_prune.common.units import human_bytes
from emo_prune.errors import TrainingError
from emo_prune.extract.card import MANIFEST_FILE
from emo_prune.extract.run import copied_files
from emo_prune.extract.source import copy_into
from emo_prune.io import (
    CONFIG_FILE,
    Checkpoint,
    LayerTensors,
    TensorReader,
    build_inventory,
    model_identity,
    tensor_bytes,
)
from emo_prune.io.atomic import AtomicFolder, write_text
from emo_prune.io.shards import ShardedWriter, TensorSpec
from emo_prune.io.sizes import parse_size
from emo_prune.select.plan import Kept, Plan, dumps, validate_plan
from emo_prune.version import __version__

MERGE_FILE = "merge_back.json"


@dataclass(frozen=True)
class MergeOptions:
    alpha: float = 1.0
    router: bool = False
    shared: bool = False
    everything: bool = False  # --all: router, shared and every non-MoE tensor too

    def check(self) -> None:
        if not 0 < self.alpha <= 1:
            raise TrainingError(f"--alpha must be in (0, 1] (got {self.alpha}): 1 replaces, less averages with FULL")


@dataclass
class MergeResult:
    out_dir: Path
    taken: int  # tensors written from the build (wholly or some rows)
    copied: int  # tensors copied from FULL unchanged
    total_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "out_dir": str(self.out_dir)}


def build_plan(full: Checkpoint, build: Checkpoint) -> tuple[Plan, Kept]:
    """The build's plan from its manifest, checked to be cut from `full` (recorded source identity)."""
    if not (build.path / MANIFEST_FILE).is_file():
        raise TrainingError(
            f"{build.path} has no {MANIFEST_FILE}: merge-back needs a build written by `extract` (or `finetune` of one)"
        )
    plan = Plan.load(build.path / MANIFEST_FILE)
    recorded = (plan.source_model or {}).get("digest")
    digest = model_identity(full)["digest"]
    if recorded != digest:
        raise TrainingError(
            f"{build.path} was not cut from {full.path}: its manifest records source digest {str(recorded)[:12]}, "
            f"{full.path} has {digest[:12]}; merge it into the model it was extracted from"
        )
    return plan, validate_plan(plan, full.architecture, where=f"the plan in {build.path}")


class _BuildExperts:
    """Expert j of one build layer as fused rows (gate_up [2I, H], down [H, I]), whatever its storage."""

    def __init__(self, reader: TensorReader, entry: LayerTensors):
        self.reader, self.entry = reader, entry

    def row(self, j: int, which: str) -> torch.Tensor:
        if self.entry.fused:
            return self.reader.get_rows(self.entry.fused[which], [j])[0]
        names = self.entry.per_expert[j]
        if which == "down":
            return self.reader.get(names["down"])
        return torch.cat([self.reader.get(names["gate"]), self.reader.get(names["up"])], dim=0)  # [2I, H]

    def projection(self, j: int, projection: str) -> torch.Tensor:
        if not self.entry.fused:
            return self.reader.get(self.entry.per_expert[j][projection])
        if projection == "down":
            return self.row(j, "down")
        gate_up = self.row(j, "gate_up")  # [2I, H]
        width = gate_up.shape[0] // 2
        return gate_up[:width] if projection == "gate" else gate_up[width:]


def _blend(full: torch.Tensor, tuned: torch.Tensor, alpha: float, name: str) -> torch.Tensor:
    if full.shape != tuned.shape:
        raise TrainingError(
            f"{name}: FULL holds {list(full.shape)}, the build {list(tuned.shape)}; the build does not fit this model"
        )
    if alpha == 1:
        return tuned.to(full.dtype)
    return ((1 - alpha) * full.float() + alpha * tuned.float()).to(full.dtype)


class _Merger:
    """Decides, per FULL tensor, whether it is taken from the build (and computes it) or copied."""

    def __init__(self, full: Checkpoint, build: Checkpoint, kept: Kept, options: MergeOptions):
        self.full, self.build, self.kept, self.options = full, build, kept, options
        self.arch = full.architecture
        self.full_reader, self.build_reader = TensorReader(full), TensorReader(build)
        self.layouts = {lay.index: lay for lay in self.arch.layouts}
        self.build_layers = {entry.index: entry for entry in build_inventory(build)}
        shared = self.arch.family.shared_experts
        self.separate = tuple(shared.tensors) if shared is not None and shared.kind == "separate" else ()
        self.router = options.router or options.everything
        self.shared = options.shared or options.everything

    def _taken_ids(self, layer: int) -> list[tuple[int, int]]:
        """(FULL id, build row) of the experts taken in `layer`: routed always, shared / always-active with --shared."""
        fixed = set(self.layouts[layer].fixed_ids)
        ids = self.kept[layer] or []
        return [(e, j) for j, e in enumerate(ids) if self.shared or e not in fixed]

    def tensor(self, name: str) -> torch.Tensor | None:
        """The merged tensor `name`, or None when FULL's bytes are kept."""
        role = self.arch.classify(name)
        alpha = self.options.alpha
        if role.kind in ("fused", "expert", "router", "router_vector") and self.kept[role.layer] is not None:
            experts = _BuildExperts(self.build_reader, self.build_layers[role.layer])
            if role.kind == "expert":
                j = dict(self._taken_ids(role.layer)).get(role.expert)
                if j is None:
                    return None
                return _blend(self.full_reader.get(name), experts.projection(j, role.projection), alpha, name)
            if role.kind == "fused":
                pairs = self._taken_ids(role.layer)
                rows = lambda j: experts.row(j, role.projection)  # noqa: E731
            elif self.router:
                pairs = [(e, j) for j, e in enumerate(self.kept[role.layer])]  # every kept row, shared included
                tuned = self.build_reader.get(self.build_layers[role.layer].router if role.kind == "router" else name)
                rows = lambda j: tuned[j]  # noqa: E731
            else:
                return None
            if not pairs:
                return None
            merged = self.full_reader.get(name).clone()  # [E, ...]
            for e, j in pairs:
                merged[e] = _blend(merged[e], rows(j), alpha, name)
            return merged
        separate = any(f".{prefix}" in f".{name}" for prefix in self.separate)
        if (separate and self.shared) or (role.kind == "other" and not separate and self.options.everything):
            if name not in self.build.weight_map:
                raise TrainingError(f"{name} is in {self.full.path} but not in the build {self.build.path}")
            return _blend(self.full_reader.get(name), self.build_reader.get(name), alpha, name)
        return None

    def close(self) -> None:
        self.full_reader.close()
        self.build_reader.close()


def merge_back(
    full_dir: str | Path,
    build_dir: str | Path,
    out_dir: str | Path,
    options: MergeOptions = MergeOptions(),
    *,
    max_shard_size: str | int = "5GB",
    overwrite: bool = False,
) -> MergeResult:
    """Write FULL with the build's experts (and, by `options`, router rows, shared experts, the rest) to `out_dir`;
    progress: one "merge-back" task over the bytes written."""
    options.check()
    full, build = Checkpoint.open(full_dir), Checkpoint.open(build_dir)
    out_dir = Path(out_dir)
    folder = AtomicFolder(out_dir, overwrite=overwrite, protect=[full.path, build.path])
    plan, kept = build_plan(full, build)
    build_inventory(full)  # refuses a FULL whose tensors disagree with its config before anything is written
    order = sorted(full.weight_map.items(), key=lambda item: (item[1], full.tensor(item[0]).begin))
    specs = [TensorSpec(name, full.tensor(name).dtype, tuple(full.tensor(name).shape)) for name, _ in order]
    merger = _Merger(full, build, kept, options)
    taken = copied = 0
    try:
        with folder as tmp, events.progress() as progress:
            task = progress.add_task("merge-back", total=None)
            writer = ShardedWriter(tmp, specs, parse_size(max_shard_size))
            try:
                done = 0
                for spec in specs:
                    merged = merger.tensor(spec.name)
                    if merged is None:
                        source = tensor_bytes(full, spec.name)
                        writer.write_from(
                            spec.name, lambda fd, offset, _n, source=source: copy_into(source, fd, offset, spec.dtype)
                        )
                        copied += 1
                    else:
                        writer.write_tensor(spec.name, merged)
                        taken += 1
                    done += spec.nbytes
                    progress.update(task, completed=done, total=writer.total_bytes, rate=human_bytes(done))
                index = writer.finish()
            finally:
                writer.abort()
            shutil.copyfile(full.path / CONFIG_FILE, tmp / CONFIG_FILE)
            for path in copied_files(full.path):  # tokenizer, generation config...: not its index, card or manifest
                shutil.copyfile(path, tmp / path.name)
            record = {
                "tool_version": __version__,
                "full_model": model_identity(full),
                "build": {"path": str(build.path.resolve()), "digest": model_identity(build)["digest"]},
                "experts_kept_per_layer": kept,
                "options": asdict(options),
                "finetune": json.loads((build.path / MANIFEST_FILE).read_text()).get("finetune"),
            }
            write_text(tmp / MERGE_FILE, dumps(record))
    finally:
        merger.close()
    return MergeResult(out_dir, taken, copied, index["metadata"]["total_size"])
