"""`profile_model`: calibration documents in, a filled Profile out, in ONE pass over the calibration set.

Two runners feed the same StatsCollector: the ordinary one (whole model in memory, one decoder forward
per batch) and the layerwise one (layerwise.py, for models larger than memory). Both give the same
sums up to float rounding. Multi-process runs shard the documents and all_reduce the sums.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from functools import reduce
from pathlib import Path

import torch

from emo_prune.arch import MoEArchitecture
from emo_prune.calib import Document, describe_sources
from emo_prune.common.constants import DEFAULT_MAX_TOKENS  # noqa: E402
from emo_prune.errors import CalibrationError
from emo_prune.io import Checkpoint, model_identity
from emo_prune.io.lock import FolderLock
from emo_prune.memory import MemoryOptions, Workload, plan_memory
from emo_prune.models.loading import load_tokenizer, resolve_device, resolve_dtype, resolve_seq_len
from emo_prune.models.weights import decoder_of, load_pretrained
from emo_prune.process.distributed import all_reduce_sum, current_world, gather_lists
from emo_prune.profile.batches import Batch, make_batches, shard_documents, tokenize_documents
from emo_prune.profile.collector import StatsCollector
from emo_prune.profile.layerwise import run_layerwise
from emo_prune.profile.progress import token_progress
from emo_prune.profile.store import PROFILE_FILE, Profile
from emo_prune.profile.topk_sample import SAMPLE_SIZE, TopkSample


@dataclass
class ProfileSettings:
    seq_len: int | None = None  # None: min(2048, max_position_embeddings)
    batch_size: int = 8  # rows (windows) per forward
    max_tokens: int | None = DEFAULT_MAX_TOKENS  # per domain; None = every document
    device: str = "auto"
    dtype: str = "auto"
    layerwise: bool | None = None  # None: the memory plan decides (the path that needs less memory)
    offload_dir: Path | None = None  # implies layerwise
    seed: int = 0
    max_memory: str | int | None = None  # the memory plan's budget (default: EMO_PRUNE_MAX_MEMORY, else free RAM)
    coverage_sample: int = SAMPLE_SIZE  # tokens' top-k sets kept per domain and layer (topk_sample.py)

    def validate(self) -> None:
        if self.batch_size <= 0:
            raise CalibrationError(f"--batch-size must be positive, got {self.batch_size}")
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise CalibrationError(f"--max-tokens must be positive, got {self.max_tokens}")
        if self.coverage_sample <= 0:
            raise CalibrationError(f"coverage_sample must be positive, got {self.coverage_sample}")
        if self.offload_dir is not None and self.layerwise is False:
            raise CalibrationError("--offload-dir only applies with --layerwise")

    @property
    def memory(self) -> MemoryOptions:
        forced = self.layerwise if self.offload_dir is None else True
        return MemoryOptions({None: "auto", True: "layerwise", False: "whole"}[forced], self.max_memory)


def run_full(
    model_dir: Path,
    arch: MoEArchitecture,
    batches: list[Batch],
    collector: StatsCollector,
    device: torch.device,
    dtype: torch.dtype,
) -> None:
    model = load_pretrained(model_dir, dtype, device)  # tensor by tensor into its own parameters
    decoder = decoder_of(model)
    detachers = [collector.attach(layer, lay, arch.family) for layer, lay in zip(decoder.layers, arch.layouts, strict=True)]
    try:
        with torch.inference_mode(), token_progress(sum(batch.num_tokens for batch in batches)) as advance:
            for batch in batches:
                collector.count(batch)
                collector.activate(collector.context(batch))
                decoder(
                    input_ids=batch.input_ids.to(device),
                    attention_mask=batch.attention_mask.to(device),
                    use_cache=False,
                )
                advance(batch.num_tokens)
    finally:
        collector.activate(None)
        for detach in detachers:
            detach()


def profile_model(
    model_dir: str | Path,
    documents: list[Document],
    settings: ProfileSettings | None = None,
) -> Profile:
    """Profile `documents` on the model in `model_dir`; every rank returns the full (reduced) profile.

    Whole model or layer by layer: `settings.layerwise`, or (None) the memory plan, whose one-line
    note says when it switches to the layerwise path. Progress: one "profile" task over the tokens.
    """
    settings = settings or ProfileSettings()
    settings.validate()
    if not documents:
        raise CalibrationError("the calibration set is empty: no documents to profile")
    model_dir = Path(model_dir)
    checkpoint = Checkpoint.open(model_dir)
    arch = checkpoint.architecture
    world = current_world(settings.device)
    device = torch.device(resolve_device(settings.device, world.local_rank))
    dtype = resolve_dtype(settings.dtype, checkpoint.config)
    seq_len = resolve_seq_len(settings.seq_len, checkpoint.config)
    tokenizer = load_tokenizer(model_dir)
    tokenized = tokenize_documents(documents, tokenizer, settings.max_tokens)
    domains = list(dict.fromkeys(d.domain for d in documents))
    mine = shard_documents(tokenized, world.rank, world.size) if world.size > 1 else tokenized
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    batches = list(make_batches(mine, seq_len, settings.batch_size, pad_id))
    collector = StatsCollector(list(arch.layouts), domains, device, settings.coverage_sample, world.rank)

    work = Workload(
        rows=settings.batch_size,
        seq_len=seq_len,
        kept_tokens=0 if settings.offload_dir is not None else sum(b.input_ids.numel() for b in batches),
    )
    layerwise = plan_memory("profile", [checkpoint], dtype, work, settings.memory, str(device), lean=True).path == "layerwise"
    if layerwise:
        run_layerwise(checkpoint, batches, collector, device, dtype, settings.offload_dir)
    else:
        run_full(model_dir, arch, batches, collector, device, dtype)
    if world.size > 1:
        collector.load_flat(all_reduce_sum(collector.flat(), world))

    calibration = describe_sources(documents)
    for entry in calibration:
        used = [d for d in tokenized if d.source == entry["source"]]
        entry["documents_used"], entry["tokens_used"] = len(used), sum(len(d.ids) for d in used)
    recorded = asdict(settings) | {
        "layerwise": layerwise,
        "seq_len": seq_len,
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "offload_dir": None if settings.offload_dir is None else str(settings.offload_dir),
        "world_size": world.size,
    }
    profile = Profile(layouts=list(arch.layouts), model=model_identity(checkpoint), settings=recorded, calibration=calibration)
    profile.domains = collector.finish()
    if world.size > 1:  # every rank's bottom-N sample -> the bottom-N of all of them (topk_sample.py)
        for stats in profile.domains.values():
            stats.sample = reduce(TopkSample.merge, gather_lists([stats.sample], world))
    return profile


def profile_to_file(
    model_dir: str | Path,
    sources: list[str],
    out: str | Path,
    domains: list[str] | None = None,
    settings: ProfileSettings | None = None,
    *,
    overwrite: bool = False,
) -> Profile:
    """Load the calibration sources, profile, and (on rank 0) write the profile atomically to `out`."""
    from emo_prune.calib import load_documents

    settings = settings or ProfileSettings()
    settings.validate()
    main = current_world(settings.device).is_main
    lock = FolderLock(out) if main else None  # the writing rank holds --out from the start: a second writer fails at once
    with lock or contextlib.nullcontext():
        PROFILE_FILE.check_output(Path(out), overwrite)
        documents = load_documents(sources, domains, seed=settings.seed)
        profile = profile_model(model_dir, documents, settings)
        if main:
            profile.save(out, overwrite=overwrite, lock=lock)
    return profile
