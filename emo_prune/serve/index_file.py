"""A pool index, its file format: where calibration requests (answers included) routed, looked up by how their contexts routed.

Shapes: N entries (calibration context -> answer pairs), L MoE layers, E experts of a layer, R routed
experts of the KEY layer (the first MoE layer).

Why: a context often routes unlike its answer (a math question is words, its worked answer digits), so
the context's own router mass picks the wrong pool; drafts (`--draft`) guess the answer but are decoded
inside the pool they are meant to fix. An index answers from calibration text instead: the requests whose
contexts routed most like this one, and where those whole requests, answers included, routed. Each
entry holds
  key    [R]  the mean router probability of the pair's context tokens at the key layer, unit-normalized
              (the first MoE layer: its input depends on no expert, so a request's key is the same
              whatever pools it runs in, and the same as the whole model's);
  value  [L, E] per layer, the mean of p^power (power 1 by default) over the pair's DOCUMENT, its
              context and answer tokens (EMO's pool rule: a training document runs in the pool its
              own summed router probabilities choose, and a request's context runs in its pools
              too), or over its answer tokens alone (`mass_of="answer"`).
A request's pools are then the top-P experts of the mean value of its K nearest entries by cosine of the
keys (`PoolIndex.prior`). The key comes from the request's context only; nothing it scores or generates.

Measured on the bundled EMO (examples/experiments/pool_tuning.py: the default index, built from the `train`
split, scored on every pair of the `calib` split): math at 12.5% keeps 0.93 of the full model in one
prefill (0.95 with a 32-token draft weighed 1:3, every problem family >= 0.90), code and prose
0.98-0.99; at 25% 0.99-1.00. Mass over the answers alone ties on the calibration split (0.94; mean
p^2: 0.93, with order of operations and word problems at 0.83 and 0.79), but on the 404 held-out math
problems the document's mass keeps word problems at 0.89 where the answers' keep 0.80
(examples/experiments/pool_index_scaling.py, examples/experiments/pool_oracle.py: the oracle that sees the answer reaches
0.90): the document is what EMO trained pools on, and the request's context runs in the pools too.

Pairs are cut by `emo_prune.calib.pairs`; the index is built by `emo_prune.serve.index_build`.

The file is an artifact (`emo_prune.io.artifact`: safetensors `keys`, `values.{layer}` with JSON metadata
under META_KEY); a loaded index is untrusted: its shapes, values and router fingerprint are checked
against the model it is used with.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from emo_prune.io.lock import FolderLock

from emo_prune.calib.document import domain_problem, is_domain
from emo_prune.errors import PlanError
from emo_prune.io import Checkpoint
from emo_prune.io.artifact import ArtifactKind
from emo_prune.io.stats_file import check_statistic

META_KEY = "emo_prune.pool_index"
FORMAT = 2
REBUILD = "build it again with `emo-prune pool-index`"
INDEX_FILE = ArtifactKind(META_KEY, "pool index", (FORMAT,), "pt", PlanError, REBUILD)
DEFAULT_POWER = 1.0  # mass as the mean p (EMO's rule); measured against p^2 in examples/experiments/pool_tuning.py
MASS_OF = ("document", "answer")  # the tokens an entry's value averages over; the first is the default


@dataclass(frozen=True)
class Neighbour:
    entry: int
    similarity: float
    domain: str


@dataclass(frozen=True)
class PoolIndex:
    key_layer: int  # the first MoE layer
    keys: torch.Tensor  # [N, R] float32, unit rows
    values: dict[int, torch.Tensor]  # MoE layer -> [N, E] float32, mean p^power over an entry's `mass_of` tokens
    domains: tuple[str, ...]  # [N] the domain of each entry's document
    power: float
    mass_of: str  # "document" (context + answer) or "answer"
    fingerprint: str  # sha256 of the model's router weights (`router_fingerprint`)

    # ---- lookup ---------------------------------------------------------------------------------
    def nearest(self, key: torch.Tensor, k: int) -> list[Neighbour]:
        """The k entries whose keys have the highest cosine with `key` [R] (ties: lower entry first)."""
        key = key.float().cpu()
        norm = key.norm()
        if not norm > 0:
            raise PlanError("pool index: the request's key is all zeros (an empty context?)")
        similarity = self.keys @ (key / norm)  # [N]
        order = torch.sort(similarity, descending=True, stable=True).indices[: min(k, len(self.domains))]
        return [Neighbour(int(i), float(similarity[i]), self.domains[i]) for i in order]

    def prior(self, neighbours: list[Neighbour]) -> dict[int, torch.Tensor]:
        """Per MoE layer, the mean value of `neighbours`: [E] float64, what the pools are chosen by."""
        rows = torch.tensor([n.entry for n in neighbours], dtype=torch.long)
        return {layer: v[rows].double().mean(dim=0) for layer, v in self.values.items()}

    # ---- file -----------------------------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = True, lock: FolderLock | None = None) -> Path:
        """Write atomically under the file's lock; an existing file is replaced only when it is a pool
        index and `overwrite` (`emo_prune.io.atomic.write_output`)."""
        tensors = {"keys": self.keys.contiguous(), **{f"values.{layer}": v.contiguous() for layer, v in self.values.items()}}
        meta = {
            "key_layer": self.key_layer,
            "power": self.power,
            "mass_of": self.mass_of,
            "fingerprint": self.fingerprint,
            "domains": list(self.domains),
        }
        return INDEX_FILE.write(path, tensors, meta, overwrite=overwrite, lock=lock)

    @classmethod
    def load(cls, path: str | Path, checkpoint: Checkpoint) -> PoolIndex:
        """The index at `path`, checked against `checkpoint`'s layouts and routers (an untrusted file)."""
        path = Path(path)
        meta, tensors = INDEX_FILE.read(path)
        try:
            index = cls._from_parts(meta, tensors, str(path))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PlanError(
                f"{path} is not a consistent pool index ({exc}); build it again with `emo-prune pool-index`"
            ) from None
        index.check_model(checkpoint, path)
        return index

    @classmethod
    def _from_parts(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor], where: str = "pool index") -> PoolIndex:
        """An index from its metadata (format already checked by INDEX_FILE.read) and tensors."""
        key_layer, power, fingerprint, domains, mass_of = (
            meta[k] for k in ("key_layer", "power", "fingerprint", "domains", "mass_of")
        )
        if not isinstance(key_layer, int) or isinstance(key_layer, bool) or key_layer < 0:
            raise ValueError("key_layer")
        if not isinstance(power, (int, float)) or isinstance(power, bool) or not power > 0:
            raise ValueError("power")
        if mass_of not in MASS_OF:
            raise ValueError("mass_of")
        if not isinstance(fingerprint, str) or not isinstance(domains, list):
            raise ValueError("fingerprint or domains")
        bad = next((d for d in domains if not is_domain(d)), None)
        if bad is not None:
            raise ValueError(domain_problem(bad, "domains"))
        keys = tensors.pop("keys")
        values = {}
        for name, tensor in tensors.items():
            prefix, _, layer = name.partition(".")
            if prefix != "values" or not layer.isdigit():
                raise ValueError(f"unexpected tensor {name!r}")
            values[int(layer)] = tensor.float()
        n = len(domains)
        if keys.dim() != 2 or keys.shape[0] != n or n == 0:
            raise ValueError(f"keys of shape {tuple(keys.shape)} for {n} entries")
        for layer, v in values.items():
            if v.dim() != 2 or v.shape[0] != n:
                raise ValueError(f"values.{layer} of shape {tuple(v.shape)} for {n} entries")
        keys = keys.float()
        for name, t in [("keys", keys), *((f"values.{layer}", v) for layer, v in values.items())]:
            check_statistic(name, t.numpy(), where, PlanError, REBUILD)
        return cls(key_layer, keys, dict(sorted(values.items())), tuple(domains), float(power), mass_of, fingerprint)

    def check_model(self, checkpoint: Checkpoint, where: Path | str = "pool index") -> None:
        """Refuse an index built for another model: other MoE layers, expert counts or router weights."""
        layouts = [layout for layout in checkpoint.architecture.layouts if not layout.is_dense]
        expected = {layout.index: layout.num_experts for layout in layouts}
        found = {layer: v.shape[1] for layer, v in self.values.items()}
        if found != expected or self.key_layer != layouts[0].index or self.keys.shape[1] != len(layouts[0].routed_ids):
            raise PlanError(f"{where} does not fit {checkpoint.path}: its layers hold {found} experts, the model's {expected}")
        if self.fingerprint != router_fingerprint(checkpoint):
            raise PlanError(
                f"{where} was built for another model (its router weights differ from {checkpoint.path}'s); "
                "build the index for this model with `emo-prune pool-index`"
            )

    def summary(self) -> dict[str, Any]:
        return {
            "entries": len(self.domains),
            "domains": dict(Counter(self.domains)),
            "power": self.power,
            "mass_of": self.mass_of,
            "key_layer": self.key_layer,
        }


def router_fingerprint(checkpoint: Checkpoint) -> str:
    """sha256 over the stored bytes of every MoE layer's router weight: an index is only valid for them."""
    from emo_prune.io.reader import TensorReader

    arch = checkpoint.architecture
    digest = hashlib.sha256()
    with TensorReader(checkpoint) as reader:
        for layout in arch.layouts:
            if layout.is_dense:
                continue
            weight = reader.get(arch.router_weight_key(layout.index, checkpoint.names)).contiguous()
            digest.update(f"{layout.index}:{weight.dtype}:{tuple(weight.shape)}".encode())
            digest.update(weight.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def request_key(context_mass: torch.Tensor, layout: Any) -> torch.Tensor:
    """The key of a context [R]: its summed router probabilities `context_mass` [E] at the key layer over
    the routed experts, unit-normalized (so the mean per token, up to scale: contexts of any length compare)."""
    key = context_mass[list(layout.routed_ids)].float()
    norm = key.norm()
    return key / norm if norm > 0 else key
