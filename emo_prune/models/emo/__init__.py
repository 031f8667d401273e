"""The native EMO model (`model_type: "emo"`) for transformers 5; importing this package registers it.

(`import emo_prune` imports it as soon as transformers is imported: emo_prune.models.autoregister.)
"""

from emo_prune.models.emo.configuration_emo import EmoConfig
from emo_prune.models.emo.modeling_emo import EmoForCausalLM, EmoModel, EmoPreTrainedModel
from emo_prune.models.emo.register import register_emo

__all__ = ["EmoConfig", "EmoForCausalLM", "EmoModel", "EmoPreTrainedModel", "register_emo"]

register_emo()
