"""The profile file: per-domain expert statistics of one model, in one safetensors file.

Shapes: L layers, E_max = the largest expert count of any layer (a layer with E_l < E_max uses
columns 0..E_l-1; dense layers are all-zero rows). Statistics are SUMS, so profiles of disjoint
calibration sets add up exactly (`Profile.merge`, multi-process runs); means are taken when read.

Tensors, float64 (exact integer counts up to 2^53):
  "{domain}/tokens"       [L, E_max]  tokens routed to the expert (top-k picks, shared/always-on included)
  "{domain}/prob_mass"    [L, E_max]  sum of router probabilities, softmax exactly as the model routes
                                      (EMO shared path: routed and shared blocks softmaxed separately)
  "{domain}/gate_weight"  [L, E_max]  sum of the routing weight over the tokens routed to the expert
  "{domain}/reap"         [L, E_max]  sum over routed tokens of routing weight x ||expert output||_2
  "{domain}/easy_ep"      [L, E_max]  EASY-EP (arXiv 2504.06792): sum over routed tokens of routing weight
                                      x ||expert output||_2 x (1 - cos(h, h + moe(h))), h the MoE block's
                                      input and moe(h) its output (format 2)
  "{domain}/ean"          [L, E_max]  sum over routed tokens of ||expert output||_2 (REAP's EAN; format 2)
  "{domain}/pool_25"      [L, E_max]  documents whose EMO pool at the 25% budget holds the expert
  "{domain}/pool_12"      [L, E_max]  same at the 12.5% budget (pool = top-P routed experts by the
                                      document's summed routed probability; fixed experts always count)
  "{domain}/entropy"      [L]         sum over tokens of the router entropy (nats)
  "{domain}/counts"       [2]         (non-padding tokens, documents)
  "{domain}/topk_ids"     [L, N, k_max] int32 and "{domain}/topk_priority" [L, N]: a bounded sample of
                                      tokens' top-k sets (topk_sample.py; format 2)
Format 1 files (before easy_ep and the sample) still load: those statistics are then absent, and only
the methods that need them refuse (`Profile.stat`, `Profile.topk_sample`).
Metadata (safetensors `__metadata__["emo_prune.profile"]`, JSON): format, tool version, model
identity, per-layer layouts, settings, calibration sources with digests, pool sizes per layer. Written
and read (header, kind and format checked before any tensor) as an artifact, `emo_prune.io.artifact`.

Statistics are numpy arrays, so reading a profile and selecting from it (`select --method mass`)
never imports torch; the collector converts its torch sums once, when it finishes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emo_prune.arch import LayerLayout
from emo_prune.calib.document import domain_problem, is_domain
from emo_prune.errors import ProfileError
from emo_prune.io.artifact import ArtifactKind
from emo_prune.io.lock import FolderLock
from emo_prune.io.stats_file import check_statistic
from emo_prune.profile.topk_sample import TopkSample
from emo_prune.version import __version__

FORMAT = 2
READABLE_FORMATS = (1, FORMAT)
META_KEY = "emo_prune.profile"
EXPERT_STATS = ("tokens", "prob_mass", "gate_weight", "reap", "pool_25", "pool_12", "easy_ep", "ean")
ADDED_STATS = {"easy_ep": 2, "ean": 2}  # statistic -> the format that introduced it (absent from older files)
POOL_BUDGETS = {"pool_25": 0.25, "pool_12": 0.125}
REBUILD = "profile the model again (emo-prune profile)"
PROFILE_FILE = ArtifactKind(META_KEY, "profile", READABLE_FORMATS, "np", ProfileError, REBUILD)


def pool_size(layout: LayerLayout, fraction: float) -> int:
    """Routed experts in a document's EMO pool at a keep fraction (the keep count includes fixed experts)."""
    if layout.is_dense:
        return 0
    keep = max(layout.top_k, layout.experts_at(fraction))
    return max(0, min(len(layout.routed_ids), keep - len(layout.fixed_ids)))


def layout_to_json(layout: LayerLayout) -> dict[str, Any]:
    return {
        "experts": layout.num_experts,
        "shared": layout.num_shared,
        "always_active": list(layout.always_active),
        "top_k": layout.top_k,
        "norm_topk_prob": layout.norm_topk_prob,
    }


def layout_from_json(index: int, data: dict[str, Any]) -> LayerLayout:
    return LayerLayout(
        index=index,
        num_experts=data["experts"],
        num_shared=data["shared"],
        always_active=tuple(data["always_active"]),
        top_k=data["top_k"],
        norm_topk_prob=data["norm_topk_prob"],
    )


@dataclass
class DomainStats:
    """Accumulated statistics of one domain; tensors as in the module docstring."""

    name: str
    expert: dict[str, np.ndarray]  # stat -> [L, E_max] float64
    entropy: np.ndarray  # [L] float64
    num_tokens: int = 0
    num_documents: int = 0
    sample: TopkSample | None = None  # tokens' top-k sets (None: a format 1 file)

    @classmethod
    def zeros(cls, name: str, num_layers: int, max_experts: int) -> DomainStats:
        return cls(
            name=name,
            expert={s: np.zeros((num_layers, max_experts), dtype=np.float64) for s in EXPERT_STATS},
            entropy=np.zeros(num_layers, dtype=np.float64),
        )

    def add(self, other: DomainStats) -> None:
        for s in EXPERT_STATS:
            if s in self.expert and s in other.expert:
                self.expert[s] += other.expert[s]
            else:  # a sum over a part that lacks it is unknown
                self.expert.pop(s, None)
        if self.num_tokens == 0 and self.sample is None:  # fresh (Profile.domain): take the other's sample
            self.sample = other.sample
        elif self.sample is not None and other.sample is not None:
            self.sample = self.sample.merge(other.sample)
        else:
            self.sample = None
        self.entropy += other.entropy
        self.num_tokens += other.num_tokens
        self.num_documents += other.num_documents


@dataclass
class Profile:
    layouts: list[LayerLayout]
    model: dict[str, Any]  # emo_prune.io.model_identity(...) of the profiled model
    settings: dict[str, Any] = field(default_factory=dict)  # seq_len, max_tokens, dtype, layerwise, ...
    calibration: list[dict[str, Any]] = field(default_factory=list)  # {source, domain, digest, documents, tokens}
    domains: dict[str, DomainStats] = field(default_factory=dict)
    tool_version: str = __version__

    # ---- shape facts --------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.layouts)

    @property
    def max_experts(self) -> int:
        return max((lay.num_experts for lay in self.layouts), default=0)

    def pool_sizes(self) -> dict[str, list[int]]:
        return {s: [pool_size(lay, f) for lay in self.layouts] for s, f in POOL_BUDGETS.items()}

    # ---- accumulation -------------------------------------------------------------------------
    def domain(self, name: str) -> DomainStats:
        """The statistics of `name`, created empty on first use."""
        if name not in self.domains:
            self.domains[name] = DomainStats.zeros(name, self.num_layers, self.max_experts)
        return self.domains[name]

    # ---- reading ------------------------------------------------------------------------------
    def require_domain(self, name: str) -> DomainStats:
        if name not in self.domains:
            raise ProfileError(f"domain {name!r} is not in this profile (it has: {', '.join(sorted(self.domains)) or 'none'})")
        return self.domains[name]

    def stat(self, domain: str, stat: str, layer: int) -> np.ndarray:
        """One statistic of one layer: [E_l] float64."""
        if stat not in EXPERT_STATS:
            raise ProfileError(f"unknown statistic {stat!r} (known: {', '.join(EXPERT_STATS)})")
        stats = self.require_domain(domain)
        if stat not in stats.expert:
            raise ProfileError(self._missing(f"statistic {stat!r}", domain))
        return stats.expert[stat][layer, : self.layouts[layer].num_experts]

    def topk_sample(self, domain: str) -> TopkSample:
        """The domain's sample of tokens' top-k sets (topk_sample.py)."""
        sample = self.require_domain(domain).sample
        if sample is None:
            raise ProfileError(self._missing("top-k sample", domain))
        return sample

    def _missing(self, what: str, domain: str) -> str:
        return (
            f"this profile has no {what} for domain {domain!r} (written by emo-prune {self.tool_version}, "
            f"before profile format {FORMAT}); run `emo-prune profile` again to use this method"
        )

    def mean_probability(self, domain: str, layer: int) -> np.ndarray:
        """Mean router probability per expert over the domain's tokens (AI2's selection statistic): [E_l]."""
        stats = self.require_domain(domain)
        return self.stat(domain, "prob_mass", layer) / max(stats.num_tokens, 1)

    # ---- files --------------------------------------------------------------------------------
    def _metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "tool_version": self.tool_version,
            "model": self.model,
            "layouts": [layout_to_json(lay) for lay in self.layouts],
            "pool_sizes": self.pool_sizes(),
            "settings": self.settings,
            "calibration": self.calibration,
            "domains": {name: {"tokens": d.num_tokens, "documents": d.num_documents} for name, d in sorted(self.domains.items())},
        }

    def _tensors(self) -> dict[str, np.ndarray]:
        tensors = {}
        for name, d in sorted(self.domains.items()):
            for s in EXPERT_STATS:
                if s in d.expert:
                    tensors[f"{name}/{s}"] = np.ascontiguousarray(d.expert[s], dtype=np.float64)
            if d.sample is not None:
                tensors[f"{name}/topk_ids"] = np.ascontiguousarray(d.sample.ids, dtype=np.int32)
                tensors[f"{name}/topk_priority"] = np.ascontiguousarray(d.sample.priority, dtype=np.float64)
            tensors[f"{name}/entropy"] = np.ascontiguousarray(d.entropy, dtype=np.float64)
            tensors[f"{name}/counts"] = np.array([d.num_tokens, d.num_documents], dtype=np.float64)
        return tensors

    def save(self, path: str | Path, *, overwrite: bool = True, lock: FolderLock | None = None) -> Path:
        """Write atomically under the file's lock (`emo_prune.io.atomic.write_output`): an existing file is
        replaced only when it is a profile and `overwrite`; a profile is small: [L, E_max] per statistic."""
        if not self.domains:
            raise ProfileError("refusing to save an empty profile (no domain received any token)")
        for name in self.domains:
            if not is_domain(name):
                raise ProfileError(domain_problem(name, f"profile {path}"))
        return PROFILE_FILE.write(path, self._tensors(), self._metadata(), overwrite=overwrite, lock=lock)

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        meta, tensors = PROFILE_FILE.read(path)
        for name in meta["domains"] if isinstance(meta.get("domains"), dict) else ():
            if not is_domain(name):  # before any name reaches a tensor look-up or a table
                raise ProfileError(domain_problem(name, str(path)) + "; profile the model again")
        try:
            return cls._from_parts(meta, tensors, str(path))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
            raise ProfileError(f"{path} is not a consistent profile (bad or missing {exc}); profile the model again") from None

    @classmethod
    def _from_parts(cls, meta: dict[str, Any], tensors: dict[str, np.ndarray], where: str = "profile") -> Profile:
        """A profile from its metadata and tensors, checking every shape against the layouts (untrusted file)."""
        layouts = [layout_from_json(i, d) for i, d in enumerate(meta["layouts"])]
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for lay in layouts for v in (lay.num_experts, lay.top_k)
        ):
            raise ValueError("layouts")
        if not isinstance(meta["model"], dict) or not isinstance(meta["domains"], dict):
            raise TypeError("model / domains")
        profile = cls(
            layouts=layouts,
            model=meta["model"],
            settings=meta.get("settings", {}),
            calibration=meta.get("calibration", []),
            tool_version=str(meta.get("tool_version", "?")),
        )
        shape = (profile.num_layers, profile.max_experts)
        for name in meta["domains"]:
            counts = tensors[f"{name}/counts"]
            present = [s for s in EXPERT_STATS if s not in ADDED_STATS or f"{name}/{s}" in tensors]  # format 1 lacks the added
            for stat in (*present, "entropy", "counts"):  # before any value is used (int(NaN) would raise)
                check_statistic(f"{name}/{stat}", tensors[f"{name}/{stat}"], where, ProfileError, REBUILD)
            stats = DomainStats(
                name=name,
                expert={s: tensors[f"{name}/{s}"] for s in EXPERT_STATS if s not in ADDED_STATS or f"{name}/{s}" in tensors},
                entropy=tensors[f"{name}/entropy"],
                num_tokens=int(counts[0]),
                num_documents=int(counts[1]),
                sample=_sample_from(tensors, name, profile),
            )
            if any(tuple(t.shape) != shape or t.dtype != np.float64 for t in stats.expert.values()):
                raise ValueError(f"shape of {name}/* (expected float64 {list(shape)})")
            if tuple(stats.entropy.shape) != (profile.num_layers,) or tuple(counts.shape) != (2,):
                raise ValueError(f"shape of {name}/entropy or {name}/counts")
            profile.domains[name] = stats
        return profile

    def digest(self) -> str:
        """sha256 over the metadata and tensor bytes: identifies a profile whatever its file name."""
        h = hashlib.sha256(json.dumps(self._metadata(), sort_keys=True).encode())
        for name, tensor in self._tensors().items():
            h.update(name.encode())
            h.update(tensor.tobytes())
        return h.hexdigest()

    # ---- model checks and merging -------------------------------------------------------------
    def check_model(self, identity: dict[str, Any], where: str = "the model") -> None:
        """Raise when this profile was made from another model than `identity` (see io.model_identity)."""
        if identity.get("digest") != self.model.get("digest"):
            raise ProfileError(
                f"this profile was made from {self.model.get('path')} (digest {str(self.model.get('digest'))[:12]}), "
                f"not from {where} (digest {str(identity.get('digest'))[:12]}); profile that model first"
            )

    @classmethod
    def merge(cls, profiles: list[Profile]) -> Profile:
        """Sum profiles of the same model made with the same pool settings."""
        if not profiles:
            raise ProfileError("nothing to merge")
        first = profiles[0]
        merged = cls(layouts=first.layouts, model=first.model, settings=dict(first.settings), calibration=[])
        for p in profiles:
            if p.model.get("digest") != first.model.get("digest"):
                raise ProfileError(
                    f"cannot merge profiles of different models ({first.model.get('path')} vs {p.model.get('path')})"
                )
            if p.layouts != first.layouts:
                raise ProfileError("cannot merge profiles with different layer layouts")
            merged.calibration.extend(p.calibration)
            for name, stats in p.domains.items():
                merged.domain(name).add(stats)
        merged.settings["merged_from"] = len(profiles)
        return merged


def _sample_from(tensors: dict[str, np.ndarray], name: str, profile: Profile) -> TopkSample | None:
    """The domain's top-k sample, checked against the layouts (absent in format 1 files)."""
    if f"{name}/topk_ids" not in tensors:
        return None
    ids, priority = tensors[f"{name}/topk_ids"], tensors[f"{name}/topk_priority"]
    width = max((lay.top_k for lay in profile.layouts), default=0)
    if ids.ndim != 3 or ids.shape[0] != profile.num_layers or ids.shape[2] != width or ids.dtype != np.int32:
        raise ValueError(f"shape of {name}/topk_ids (expected int32 [{profile.num_layers}, N, {width}])")
    if priority.shape != ids.shape[:2] or priority.dtype != np.float64:
        raise ValueError(f"shape of {name}/topk_priority (expected float64 {list(ids.shape[:2])})")
    if ids.size and (ids.min() < -1 or ids.max() >= max(profile.max_experts, 1)):
        raise ValueError(f"expert ids in {name}/topk_ids")
    return TopkSample(ids, priority)
