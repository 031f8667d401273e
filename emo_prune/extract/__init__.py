"""Extraction: the streamed, atomic rewrite of a checkpoint to the experts a plan keeps."""

from emo_prune.extract.card import AI2_METADATA_FILE, MANIFEST_FILE
from emo_prune.extract.config import remap_config
from emo_prune.extract.jobs import Job, build_jobs
from emo_prune.extract.run import ExtractResult, extract, resolve_dtype

__all__ = [
    "AI2_METADATA_FILE",
    "MANIFEST_FILE",
    "ExtractResult",
    "Job",
    "build_jobs",
    "extract",
    "remap_config",
    "resolve_dtype",
]
