"""What `emo-prune eval BUILD` assumes when it is not told: read from the build's own manifest.

tasks     the offline tasks of the build's domains (DOMAIN_TASKS)
baseline  the built-in model the build was cut from, found by identity: the manifest's
          `source_model.digest` (sha256 over the source's shards) equal to a built-in model's. A
          recorded local path is only printed, never opened (a manifest is untrusted data).
"""

from __future__ import annotations

from typing import Any

from emo_prune.errors import EvalError

DOMAIN_TASKS = {
    "code": ("emo_ppl_code",),
    "prose": ("emo_ppl_prose",),
    "math": ("emo_ppl_math", "emo_math_mc"),
}


def default_tasks(manifest: dict[str, Any] | None) -> tuple[str, ...]:
    domains = manifest.get("domains") if manifest else None
    if not isinstance(domains, list) or not domains:
        raise EvalError("pass --tasks (e.g. emo_offline): this folder is not a build whose domains say which tasks fit")
    unknown = [d for d in domains if d not in DOMAIN_TASKS]
    if unknown:
        raise EvalError(
            f"pass --tasks: the build's domain {unknown[0]!r} has no offline task "
            f"(offline tasks exist for {', '.join(DOMAIN_TASKS)})"
        )
    return tuple(t for d in domains for t in DOMAIN_TASKS[d])


def default_baseline(manifest: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(builtin:NAME the build was cut from, or None; the recorded source path to print, or None)."""
    source = manifest.get("source_model") if manifest else None
    if not isinstance(source, dict):
        return None, None
    from emo_prune.io import Checkpoint, model_identity
    from emo_prune.models.builtin import BUILTIN_MODELS, BUILTIN_PREFIX

    digest = source.get("digest")
    for name, model in BUILTIN_MODELS.items():
        if model.bundled is None or not (model.bundled / "config.json").is_file():
            continue  # factory-made models are random: no build of one is worth a baseline by default
        if model_identity(Checkpoint.open(model.bundled))["digest"] == digest:
            return BUILTIN_PREFIX + name, None
    path = source.get("path")
    return None, path if isinstance(path, str) else None
