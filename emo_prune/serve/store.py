"""Experts on demand: one expert's weights read from the checkpoint when a pool needs it, kept in a
byte-budgeted cache shared by every request of a process.

Shapes: H hidden, I expert width. One cached expert = gate_up [2I, H] (gate rows first, then up, as the
fused in-memory layout) and down [H, I], at the compute dtype.

Reads are positional file reads of the byte ranges the validated safetensors header gives
(`emo_prune.io.ranges`): per-expert tensors (AI2's layout) whole, one dim-0 row of a fused
[E, 2I, H] / [E, H, I] tensor otherwise. Not mmap: mapped shard pages count towards the process's
resident memory until the shard is unmapped (`emo_prune.models.weights` measured it), which would hide
what the cache holds.

Eviction (`policy`): "lru" evicts the least recently used expert; "lfu" the least frequently requested
one, counting requests over the process's whole history (so an expert that many requests share survives a
burst of one-off experts); ties by recency. `examples/experiments/pool_benchmark.py` measures both against Belady's
optimal replacement on a mixed-domain request stream.
"""

from __future__ import annotations

import mmap
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import torch

from emo_prune.errors import CheckpointError, PlanError
from emo_prune.io import Checkpoint
from emo_prune.io.dtypes import torch_dtype
from emo_prune.io.ranges import read_tensor
from emo_prune.io.sizes import parse_size

POLICIES = ("lru", "lfu")


@dataclass(frozen=True)
class ExpertWeights:
    gate_up: torch.Tensor  # [2I, H]
    down: torch.Tensor  # [H, I]

    @property
    def nbytes(self) -> int:
        return self.gate_up.nbytes + self.down.nbytes


@dataclass
class StoreStats:
    hits: int = 0
    misses: int = 0
    bytes_read: int = 0  # bytes read from disk (as stored)
    evictions: int = 0

    def since(self, before: StoreStats) -> StoreStats:
        return StoreStats(*(getattr(self, f) - getattr(before, f) for f in ("hits", "misses", "bytes_read", "evictions")))

    def to_dict(self) -> dict[str, int | float]:
        total = self.hits + self.misses
        return {**self.__dict__, "hit_rate": round(self.hits / total, 4) if total else None}


@dataclass
class ExpertStore:
    """`get(layer, expert)` returns the expert's weights, from the cache or read from disk.

    The cache never holds more than `budget_bytes` (None: unbounded). An expert larger than the budget is
    returned without being cached. A request keeps references to the experts of its pool, so an expert
    evicted while a request uses it stays alive until that request ends: resident expert memory is the
    cache plus the pools of the running requests.
    """

    checkpoint: Checkpoint
    dtype: torch.dtype = torch.float32
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    budget_bytes: int | None = None
    policy: str = "lru"
    stats: StoreStats = field(default_factory=StoreStats)
    cache: OrderedDict[tuple[int, int], ExpertWeights] = field(default_factory=OrderedDict, repr=False)
    requests: Counter = field(default_factory=Counter, repr=False)  # (layer, expert) -> times asked for
    cached_bytes: int = 0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise PlanError(f"cache policy {self.policy!r} is not one of {', '.join(POLICIES)}")
        self.arch = self.checkpoint.architecture
        self._storage = {lay.index: self.arch.expert_storage(lay.index, self.checkpoint.names) for lay in self.arch.moe_layers}

    @classmethod
    def open(cls, model_dir, dtype: torch.dtype, budget: str | int | None = None, policy: str = "lru") -> ExpertStore:
        budget_bytes = parse_size(budget, "--cache-budget") if isinstance(budget, str) else budget
        return cls(Checkpoint.open(model_dir), dtype=dtype, budget_bytes=budget_bytes, policy=policy)

    def expert_nbytes(self, layer: int) -> int:
        """Bytes of one expert of `layer` at the compute dtype."""
        h, i = self.arch.hidden_size, self.arch.expert_width
        return 3 * h * i * torch.empty((), dtype=self.dtype).element_size()

    def get(self, layer: int, expert: int) -> ExpertWeights:
        key = (layer, expert)
        self.requests[key] += 1
        found = self.cache.get(key)
        if found is not None:
            self.stats.hits += 1
            self.cache.move_to_end(key)
            return found
        self.stats.misses += 1
        self._make_room(self.expert_nbytes(layer))  # before the read: the new expert never sits beside the one it replaces
        weights = self._read(layer, expert)
        if self.budget_bytes is None or weights.nbytes <= self.budget_bytes:
            self._make_room(weights.nbytes)  # the size read, should the header's differ
            self.cache[key] = weights
            self.cached_bytes += weights.nbytes
        return weights

    def _make_room(self, nbytes: int) -> None:
        """Evict until `nbytes` more fit the budget (nothing when they never could: that expert is not cached)."""
        if self.budget_bytes is None or nbytes > self.budget_bytes:
            return
        while self.cache and self.cached_bytes + nbytes > self.budget_bytes:
            self._evict()

    def _evict(self) -> None:
        if self.policy == "lru":
            key = next(iter(self.cache))
        else:  # least requested; the OrderedDict's order (recency) breaks ties
            key = min(self.cache, key=lambda k: self.requests[k])
        self.cached_bytes -= self.cache.pop(key).nbytes
        self.stats.evictions += 1

    def clear(self) -> None:
        self.cache.clear()
        self.cached_bytes = 0

    # ---- reading ------------------------------------------------------------------------------
    def _read(self, layer: int, expert: int) -> ExpertWeights:
        if self._storage[layer] == "per_expert":
            gate_name, up_name, down_name = (self.arch.per_expert_key(layer, expert, p) for p in ("gate", "up", "down"))
            gate, up = self.checkpoint.tensor(gate_name), self.checkpoint.tensor(up_name)
            if (gate.dtype, gate.shape) != (up.dtype, up.shape):
                raise CheckpointError(
                    f"layer {layer} expert {expert}: gate_proj is {gate.dtype} {list(gate.shape)}, up_proj {up.dtype} {list(up.shape)}"
                )
            raw = _anonymous(gate.nbytes + up.nbytes)  # gate rows, then up rows: no concatenation copy
            self._read_range(gate_name, into=raw[: gate.nbytes])
            self._read_range(up_name, into=raw[gate.nbytes :])
            gate_up = raw.view(torch_dtype(gate.dtype)).reshape(gate.shape[0] + up.shape[0], *gate.shape[1:])  # [2I, H]
            down = self._read_range(down_name)  # [H, I]
        else:
            gate_up = self._read_range(self.arch.fused_key(layer, "gate_up"), row=expert)  # [2I, H]
            down = self._read_range(self.arch.fused_key(layer, "down"), row=expert)  # [H, I]
        return ExpertWeights(self._compute(gate_up), self._compute(down))

    def _compute(self, stored: torch.Tensor) -> torch.Tensor:
        """`stored` at the compute dtype and device (on the CPU, converted into a mapping of its own too)."""
        if stored.dtype == self.dtype and self.device.type == "cpu":
            return stored
        if self.device.type != "cpu":
            return stored.to(self.device, self.dtype)
        out = _anonymous(stored.numel() * torch.empty((), dtype=self.dtype).element_size())
        return out.view(self.dtype).reshape(stored.shape).copy_(stored)

    def _read_range(self, name: str, row: int | None = None, into: torch.Tensor | None = None) -> torch.Tensor:
        """Tensor `name` (or dim-0 row `row` of it) as stored, read with one positional read into the uint8
        buffer `into` (exactly its bytes), or into an anonymous mapping of its own."""
        rows = None if row is None else [row]
        stored = read_tensor(self.checkpoint, name, rows, into=into, allocate=_anonymous)  # [1, ...] for a row
        self.stats.bytes_read += stored.nbytes
        return stored if row is None else stored[0]


def _anonymous(nbytes: int) -> torch.Tensor:
    """uint8 [nbytes] in an anonymous mapping of its own, unmapped when the last tensor on it goes.

    An expert's weights live as long as the cache or a request holds them; as malloc'd blocks (1-30 MB,
    under glibc's mmap threshold once it has risen) they would come and go through the heap, which keeps
    what it had: measured, a pool process crept up ~20 MB over 8 requests (peak 643-649 MB); with its
    experts in their own mappings it stays at 623 MB (peak 626-628 MB; synthetic 4 x 32 experts of width
    512, fp32, 25% pools, examples/experiments/pool_benchmark.py's model)."""
    return torch.frombuffer(mmap.mmap(-1, nbytes), dtype=torch.uint8)
