"""Option groups: options that several commands share, declared once as a dataclass and taken as one parameter.

A command declares `selection: SelectionFlags` (a dataclass whose fields are Typer `Annotated` options with
their defaults); `expand` shows Typer the fields in that parameter's place and packs what Typer passes back
into one instance. `cli.command.command` applies it to every command, so a group needs nothing more than its
dataclass: adding a shared option is one field in one place.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any


def is_group(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def expand(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with each option-group parameter replaced by the group's fields (as Typer sees it); `fn` unchanged
    when it takes no group. Every parameter becomes keyword-only: Typer calls commands with keywords."""
    hints = typing.get_type_hints(fn, include_extras=True)
    groups: dict[str, type] = {}
    parameters: list[inspect.Parameter] = []
    for parameter in inspect.signature(fn).parameters.values():
        annotation = hints.get(parameter.name, parameter.annotation)
        if not is_group(annotation):
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation))
            continue
        groups[parameter.name] = annotation
        field_hints = typing.get_type_hints(annotation, include_extras=True)
        for field in dataclasses.fields(annotation):
            default = field.default if field.default is not dataclasses.MISSING else inspect.Parameter.empty
            parameters.append(
                inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=field_hints[field.name])
            )
    if not groups:
        return fn
    names = [p.name for p in parameters]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise TypeError(f"{fn.__name__}: option group fields clash with other parameters: {', '.join(clashes)}")

    @functools.wraps(fn)
    def packed(**kwargs: Any) -> Any:
        for name, group in groups.items():
            kwargs[name] = group(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(group)})
        return fn(**kwargs)

    packed.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    packed.__annotations__ = {p.name: p.annotation for p in parameters}
    return packed
