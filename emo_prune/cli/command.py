"""The decorator every command body gets when cli/app.py registers it: errors rendered once, option
groups expanded, --threads applied. Command modules define plain functions and never import this: the
command table in cli/app.py wraps each one.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import click
import typer

from emo_prune.cli import option_groups
from emo_prune.cli.console import out
from emo_prune.errors import EmoPruneError, describe_os_error
from emo_prune.process import threads

F = TypeVar("F", bound=Callable[..., Any])


def reflow(doc: str | None) -> str | None:
    """A docstring's paragraphs as single lines: Typer's rich help keeps a docstring's line breaks, so at
    80 columns every source line would wrap on its own."""
    if doc is None:
        return None
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def command(fn: F) -> F:
    """Decorate a command body: renders `EmoPruneError` once, as one line and exit code 1; option-group
    parameters (cli/option_groups.py) reach Typer as their fields."""
    fn = option_groups.expand(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.pop("json_output", False):
            out.json_mode = True
        try:
            if "threads" in kwargs:  # a compute command (options.ThreadsOption): torch's threads, set once here
                kwargs["threads"] = threads.apply_threads(kwargs["threads"])
            return fn(*args, **kwargs)
        except EmoPruneError as error:
            if out.debug:
                raise
            out.error(error)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            out.error("interrupted")
            raise typer.Exit(130) from None
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # typer's own exits and usage errors render themselves
        except OSError as error:  # the disk said no where no check foresaw it: name the file, not the class
            if out.debug:
                raise
            out.error(describe_os_error(error), kind="file error")
            raise typer.Exit(1) from None
        except Exception as error:  # a bug or an input no check caught yet: still one line, exit 1
            if out.debug:
                raise
            out.error(error)
            raise typer.Exit(1) from None

    wrapper.__doc__ = reflow(fn.__doc__)
    return wrapper  # type: ignore[return-value]
