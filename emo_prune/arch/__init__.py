"""Architecture knowledge as data: one JSON description per MoE family, resolved against a config."""

from emo_prune.arch.architecture import ExpertStorage, MoEArchitecture, TensorRole
from emo_prune.arch.family import FamilySpec
from emo_prune.arch.layout import LayerLayout, compute_layouts, config_get
from emo_prune.arch.registry import architecture_for_config, families, family_for_model_type, supported_model_types

__all__ = [
    "ExpertStorage",
    "FamilySpec",
    "LayerLayout",
    "MoEArchitecture",
    "TensorRole",
    "architecture_for_config",
    "compute_layouts",
    "config_get",
    "families",
    "family_for_model_type",
    "supported_model_types",
]
