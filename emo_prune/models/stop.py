"""Stop a forward once one module has run: the one mechanism for "run the model up to layer l".

Greedy selection needs a layer's router logits, the layer stream needs one layer's output; neither
needs the layers after it. `run_until(module, forward)` hooks `module`, runs `forward()`, and returns
the module's output the moment it exists, raising through the rest of the model's forward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn


class _ModuleDone(Exception):
    def __init__(self, module: nn.Module, output: Any):
        self.module, self.output = module, output


def _stop(module: nn.Module, _inputs: Any, output: Any) -> None:
    raise _ModuleDone(module, output[0] if isinstance(output, tuple) else output)


def run_until(module: nn.Module, forward: Callable[[], Any]) -> Any:
    """`module`'s output (the first element of a tuple output) during `forward()`; nothing after it runs.

    Calls nest: a `run_until(router, ...)` whose forward is a `run_until(layer, ...)` stops at the router
    (each call catches only its own module's stop)."""
    handle = module.register_forward_hook(_stop)
    try:
        forward()
    except _ModuleDone as done:
        if done.module is not module:
            raise
        return done.output
    finally:
        handle.remove()
    raise RuntimeError(f"the forward finished without running {type(module).__name__}")
