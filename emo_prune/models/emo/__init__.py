"""The native EMO model (`model_type: "emo"`) for transformers 5; registered on `import emo_prune`."""

from emo_prune.models.emo.configuration_emo import EmoConfig
from emo_prune.models.emo.modeling_emo import EmoForCausalLM, EmoModel, EmoPreTrainedModel
from emo_prune.models.emo.register import register_emo

__all__ = ["EmoConfig", "EmoForCausalLM", "EmoModel", "EmoPreTrainedModel", "register_emo"]
