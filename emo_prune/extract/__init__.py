"""Extraction: the streamed, atomic rewrite of a checkpoint to the experts a plan keeps."""

from emo_prune.common.lazy import exports_of, lazy_exports

_EXPORTS = exports_of(
    {
        "emo_prune.extract.card": ["AI2_METADATA_FILE", "MANIFEST_FILE"],
        "emo_prune.extract.config": ["remap_config"],
        "emo_prune.extract.jobs": ["Job", "build_jobs"],
        "emo_prune.extract.run": ["ExtractResult", "extract", "resolve_dtype"],
    }
)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
