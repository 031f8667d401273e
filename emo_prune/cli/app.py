"""The `emo-prune` command: global flags, error rendering, and the command modules.

Every command validates its flags, calls ONE library function, and renders the result through
`emo_prune.console.out`. Library errors (`EmoPruneError`) become one line on stderr and exit code 1;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import click
import typer

from emo_prune.console import out
from emo_prune.errors import EmoPruneError
from emo_prune.version import __version__

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="emo-prune",
    help="Profile, prune and serve domain subsets of Mixture-of-Experts models (EMO, OLMoE, Mixtral, Qwen-MoE).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"emo-prune {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    json_output: Annotated[bool, typer.Option("--json", help="Machine output: one JSON document per command.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and library logs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print results and errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    out.json_mode, out.debug, out.quiet = json_output, debug, quiet
    _quiet_libraries(debug)


def _quiet_libraries(debug: bool) -> None:
    """transformers' own progress bars and warnings would bypass our sink; keep them for --debug."""
    from transformers.utils import logging as hf_logging

    if debug:
        hf_logging.set_verbosity_info()
        hf_logging.enable_progress_bar()
    else:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def command(fn: F) -> F:
    """Decorate a command body: renders `EmoPruneError` once, as one line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.pop("json_output", False):
            out.json_mode = True
        try:
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
        except Exception as error:  # a bug or an input no check caught yet: still one line, exit 1
            if out.debug:
                raise
            out.error(error)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _register_commands() -> None:
    from emo_prune.cli import (
        bench_cmd,
        eval_cmd,
        extract_cmd,
        generate_cmd,
        inspect_cmd,
        profile_cmd,
        run_cmd,
        select_cmd,
        verify_cmd,
    )

    # the order of `emo-prune --help`: the pipeline's steps, then the whole chain, then tooling
    for module in (inspect_cmd, profile_cmd, select_cmd, extract_cmd, verify_cmd, eval_cmd, generate_cmd, run_cmd, bench_cmd):
        module.register(app)


_register_commands()


def main() -> None:
    app(prog_name="emo-prune")
