"""emo-prune: profile, prune and serve domain subsets of Mixture-of-Experts models.

`import emo_prune` is cheap (neither torch nor transformers). It makes the native EMO model a
transformers model and registers the `emo_cpu` / `emo_triton` experts implementations as soon as
transformers is imported (emo_prune.models.autoregister), so after it
`AutoModelForCausalLM.from_pretrained(emo_dir)` works offline without `trust_remote_code`, and
`from_pretrained(any_supported_moe_dir, experts_implementation="emo_cpu")` works for every family.
"""

from emo_prune.models.autoregister import install as _install_autoregister
from emo_prune.version import __version__

_install_autoregister()

__all__ = ["__version__"]
