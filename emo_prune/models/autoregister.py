"""Register emo-prune with transformers the moment transformers is imported, and not before.

`import emo_prune` must stay cheap (the CLI's header-only commands never load torch), yet
`import emo_prune; from transformers import AutoModelForCausalLM; AutoModelForCausalLM.from_pretrained(emo_dir)`
must find `model_type: "emo"` and the `emo_cpu` / `emo_triton` experts implementations. So importing
emo_prune installs a one-shot import hook: right after `transformers/__init__.py` has run (whoever
imports it: the user, lm-eval, our own modules), it imports `emo_prune.models.emo` and
`emo_prune.runtime`, which register themselves on import. When transformers is already imported,
that happens at once.

No import cycle can form: when transformers is first imported BY one of those two packages, the hook's
`import_module` finds that package half-initialized in sys.modules and returns it; the package
registers itself when its own import finishes.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import warnings
from types import ModuleType

TRIGGER = "transformers"
SELF_REGISTERING = ("emo_prune.models.emo", "emo_prune.runtime")


def register_with_transformers() -> None:
    """Import the packages that register the EMO model and the experts implementations (idempotent)."""
    for name in SELF_REGISTERING:
        importlib.import_module(name)


def _register_quietly() -> None:
    try:
        register_with_transformers()
    except Exception as error:  # a broken torch must not make `import transformers` fail
        warnings.warn(f"emo-prune could not register with transformers: {error}", stacklevel=2)


class _RunAfter(importlib.abc.Loader):
    """Wraps the real loader of `transformers`: executes it, then registers."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):  # noqa: ANN001, ANN201 (importlib's signature)
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _register_quietly()


class _TransformersFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):  # noqa: ANN001, ANN201
        if fullname != TRIGGER:
            return None
        uninstall()  # one shot, and the finders below do the finding
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RunAfter(spec.loader)
                return spec
        return None


_FINDER = _TransformersFinder()


def install() -> None:
    """Called by `import emo_prune`."""
    if TRIGGER in sys.modules:
        _register_quietly()
    elif _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
