"""The `emo-prune` command: global flags, error rendering, and the command modules.

Every command validates its flags, calls ONE library function, and renders the result through
`emo_prune.cli.console.out`. Library errors (`EmoPruneError`) become one line on stderr and exit code 1;
`--debug` shows the traceback instead.

Command modules import torch, transformers and the heavy library modules inside their command
functions, so `--help`, `--version` and the header-only commands start without them.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import click
import typer
from typer.core import TyperGroup

from emo_prune import events, threads
from emo_prune.cli import help_panels, option_groups
from emo_prune.cli.console import out
from emo_prune.errors import EmoPruneError, describe_os_error
from emo_prune.version import __version__

# the library's notes, warnings and progress reach the user through this console from here on
events.listen(out)
# OpenMP's wait policy is read when torch loads, and no command module imports torch before its body
# (emo_prune/cli/__init__.py calls this first; a second call changes nothing)
threads.prepare_environment()

F = TypeVar("F", bound=Callable[..., Any])

# flags of the whole program that may also follow the command name (`emo-prune run --quiet`);
# `--json` is also every command's own option, so it needs no hoisting
GLOBAL_FLAGS = ("--debug", "--quiet", "-q")
# the order of `emo-prune --help`: the pipeline's steps, then the whole chain, then tooling
HELP_ORDER = (
    "init", "status", "inspect", "profile", "select", "extract", "verify", "finetune", "merge-back", "eval", "generate", "pool-index",
    "export", "plan", "run", "bench",
)  # fmt: skip


def name_metavars(command: click.Command) -> None:
    """Help shows `--keep KEEP`, `--out OUT`, never Python type names (`<path>`, `<bool>`, `list[str]`).

    Options get a metavar (what `typer.Option(metavar=...)` sets) named after the option, flags an empty
    one; arguments already name themselves (MODEL), so their type column is left empty. Once per command."""
    if getattr(command, "_metavars_named", False):
        return
    command._metavars_named = True  # type: ignore[attr-defined]
    help_panels.place_options(command)
    for param in command.params:
        if param.param_type_name == "option" and param.metavar is None:
            flag = getattr(param, "is_flag", False) or getattr(param, "is_bool_flag", False)
            param.metavar = "" if flag else max(param.opts, key=len).lstrip("-").replace("-", "_").upper()
        elif param.param_type_name == "argument":
            param.display_type_rich = lambda ctx: None  # typer's rich help: the type column of arguments
    help_option = command.get_help_option

    def get_help_option(ctx: click.Context) -> Any:
        option = help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option  # type: ignore[method-assign]
    for sub in getattr(command, "commands", {}).values():
        name_metavars(sub)


class GlobalFlagsAnywhere(TyperGroup):
    """Moves GLOBAL_FLAGS given after the command name in front of it, where click expects them, and
    renders usage errors (a missing argument, an unknown option) as one line, like every other error."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        name_metavars(self)
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except Exception as error:
            # typer raises click's exception types from its own vendored click: recognise them by
            # click's protocol (format_message, exit_code) rather than by class
            if not (hasattr(error, "format_message") and hasattr(error, "exit_code")):
                if type(error).__name__ == "Abort":
                    out.error("aborted")
                    sys.exit(1)
                raise
            ctx = getattr(error, "ctx", None)
            if type(error).__name__ == "NoArgsIsHelpError" and ctx is not None:
                # typer's rich help printed itself when the error was made (its message is then empty)
                if error.format_message().strip():
                    out.console.print(error.format_message(), markup=False, highlight=False)
                sys.exit(0)
            # the command as the user typed it (`profile`, not the `profile run` it was routed to)
            where = f" (see `{ctx.meta.get('typed_command', ctx.command_path)} --help`)" if ctx is not None else ""
            out.error(f"{error.format_message().rstrip('.')}{where}", kind="usage error")
            sys.exit(error.exit_code)
        sys.exit(code if isinstance(code, int) else 0)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """`--help` lists the pipeline's steps in order (typer would put the `profile` group last)."""
        names = super().list_commands(ctx)
        order = {name: i for i, name in enumerate(HELP_ORDER)}
        return sorted(names, key=lambda name: order.get(name, len(order)))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            name_metavars(command)
        return command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        hoisted = [a for a in args[:end] if a in GLOBAL_FLAGS]
        rest = [a for a in args[:end] if a not in GLOBAL_FLAGS] + args[end:]
        return super().parse_args(ctx, hoisted + rest)


app = typer.Typer(
    cls=GlobalFlagsAnywhere,
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
    """transformers' own progress bars and warnings would bypass our sink; keep them for --debug.

    Set through the environment when transformers is not imported yet (importing it only to quiet it
    would cost every command a second), through its API when it is (in-process callers, tests)."""
    os.environ["TRANSFORMERS_VERBOSITY"] = "info" if debug else "error"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "0" if debug else "1"
    if debug:  # lm-eval's tqdm bars (tqdm reads TQDM_* when it is first imported)
        os.environ.pop("TQDM_DISABLE", None)
    else:
        os.environ["TQDM_DISABLE"] = "1"
    if "transformers" not in sys.modules:
        return
    from transformers.utils import logging as hf_logging

    if debug:
        hf_logging.set_verbosity_info()
        hf_logging.enable_progress_bar()
    else:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


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


def _register_commands() -> None:
    from emo_prune.cli import (
        bench_cmd,
        eval_cmd,
        export_cmd,
        extract_cmd,
        finetune_cmd,
        generate_cmd,
        inspect_cmd,
        merge_back_cmd,
        plan_cmd,
        pool_index_cmd,
        profile_cmd,
        run_cmd,
        select_cmd,
        verify_cmd,
        workspace_cmd,
    )

    # registration order; `emo-prune --help` lists them in HELP_ORDER
    for module in (inspect_cmd, profile_cmd, select_cmd, extract_cmd, verify_cmd, eval_cmd, generate_cmd, pool_index_cmd, export_cmd, plan_cmd, run_cmd, bench_cmd, workspace_cmd):
        module.register(app)
    finetune_cmd.register(app)
    merge_back_cmd.register(app)


_register_commands()


def main() -> None:
    app(prog_name="emo-prune")
