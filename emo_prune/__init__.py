"""emo-prune: profile, prune and serve domain subsets of Mixture-of-Experts models.

Importing the package registers the native EMO model with transformers' Auto classes, so
`AutoModelForCausalLM.from_pretrained(emo_dir)` works offline without `trust_remote_code`, and
registers the `emo_cpu` / `emo_triton` experts implementations, so
`from_pretrained(any_supported_moe_dir, experts_implementation="emo_cpu")` works for every family.
"""

from emo_prune.models.emo import register_emo
from emo_prune.version import __version__

register_emo()

import emo_prune.runtime  # noqa: E402,F401  (registers the experts implementations on import)

__all__ = ["__version__"]
