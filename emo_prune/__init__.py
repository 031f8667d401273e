"""emo-prune: profile, prune and serve domain subsets of Mixture-of-Experts models.

Importing the package registers the native EMO model with transformers' Auto classes, so
`AutoModelForCausalLM.from_pretrained(emo_dir)` works offline without `trust_remote_code`.
"""

from emo_prune.models.emo import register_emo
from emo_prune.version import __version__

register_emo()

__all__ = ["__version__"]
