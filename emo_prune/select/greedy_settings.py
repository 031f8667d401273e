"""What greedy selection is told (torch-free: `SelectOptions` carries it on every selection path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from emo_prune.memory.plan import MemoryOptions


class DocumentLike(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def domain(self) -> str: ...


@dataclass(frozen=True)
class GreedySettings:
    seq_len: int = 512  # tokens per document (longer ones are truncated)
    batch_size: int = 8
    device: str = "cpu"
    memory: MemoryOptions = MemoryOptions()  # whole model or layer by layer (auto: by the memory plan)
