"""Verification: a build equals its source with the dropped experts' router logits at -inf.

build.py      verify(): both models on the same prompts, whole (the default)
layerwise.py  the same comparison one decoder layer at a time, for models larger than memory
"""

from emo_prune.verify.build import DEFAULT_PROMPTS, VerifyReport, prompts, verify

__all__ = ["DEFAULT_PROMPTS", "VerifyReport", "prompts", "verify"]
