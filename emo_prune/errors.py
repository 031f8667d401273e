"""One error hierarchy for the whole library.

Library code raises these and never exits; the CLI renders any `EmoPruneError` as one line and exit
code 1 (`emo_prune.cli.app`). Messages name the file, tensor or field at fault and say how to fix it.
"""

from __future__ import annotations


class EmoPruneError(Exception):
    """Base class of every error emo-prune raises on purpose."""

    #: short tag printed before the message by the CLI, e.g. "checkpoint error: ..."
    kind = "error"
    #: whether the message may span lines (the CLI keeps its newlines; every other message is one line)
    multiline = False


class CheckpointError(EmoPruneError):
    """A model folder is missing, incomplete or corrupt (config, index, shards, headers)."""

    kind = "checkpoint error"


class UnknownArchitectureError(EmoPruneError):
    """The config names a model_type that no family in the registry describes."""

    kind = "unsupported architecture"


class ConfigError(EmoPruneError):
    """A config.json is readable but inconsistent (e.g. per-layer lists of the wrong length)."""

    kind = "config error"


class CalibrationError(EmoPruneError):
    """A calibration source is missing, empty, malformed or unreachable."""

    kind = "calibration error"


class ProfileError(EmoPruneError):
    """A profile file is corrupt or does not belong to the model it is used with."""

    kind = "profile error"


class PlanError(EmoPruneError):
    """An expert-selection plan is invalid for the model (ids, counts, top-k, layer count)."""

    kind = "plan error"


class OutputError(EmoPruneError):
    """An output path is unusable: exists without --overwrite, equals or lies inside the input, ..."""

    kind = "output error"


class UnsafePathError(EmoPruneError):
    """A path read from a file (index entry, side file, recipe build name) leaves the folder it belongs to."""

    kind = "unsafe path"


class OutputBusyError(OutputError):
    """Another process holds the lock of an output folder."""

    kind = "output busy"


class VerificationError(EmoPruneError):
    """A pruned model does not match the masked original within tolerance."""

    kind = "verification failed"


class RecipeError(EmoPruneError):
    """A recipe file fails validation; the message lists each bad field."""

    kind = "recipe error"


class WorkspaceError(EmoPruneError):
    """A folder's workspace file (emo-prune.json) is unreadable or hostile, or names nothing usable."""

    kind = "workspace error"


class EvalError(EmoPruneError):
    """An lm-eval task cannot be found or run offline."""

    kind = "eval error"


class GateFailure(EmoPruneError):
    """A quality gate of a recipe does not hold."""

    kind = "quality gate failed"
    multiline = True  # one line per failed gate


class PromptError(EmoPruneError):
    """A prompt cannot be run: empty once tokenized, unreadable, or longer than the model's context."""

    kind = "prompt error"


class RuntimeSetupError(EmoPruneError):
    """A requested experts implementation or device cannot be used here (e.g. Triton without CUDA)."""

    kind = "runtime error"


class InsufficientMemoryError(EmoPruneError):
    """A command's estimated peak memory exceeds the budget on every path it has (emo_prune.memory)."""

    kind = "not enough memory"


class ExportError(EmoPruneError):
    """A build cannot be exported to the requested format exactly (llama.cpp cannot express it), or the export failed."""

    kind = "export error"


class TrainingError(EmoPruneError):
    """A fine-tuning or merge-back run cannot start or go on as asked (nothing trainable, a build not cut from
    the model it is merged into, settings a checkpoint folder was not made with)."""

    kind = "training error"


def describe_os_error(error: OSError) -> str:
    """One line for an OSError no check foresaw (a read-only disk, a name too long): what and where."""
    where = " -> ".join(str(f) for f in (error.filename, error.filename2) if f is not None)
    what = error.strerror or str(error)
    return f"{where}: {what}" if where else what
