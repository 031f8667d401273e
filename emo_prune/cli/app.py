"""The `emo-prune` command: global flags, error rendering, and the table of commands (COMMANDS).

Every command validates its flags, calls ONE library function, and renders the result through
`emo_prune.cli.console.out`. Library errors (`EmoPruneError`) become one line on stderr and exit code 1;
`--debug` shows the traceback instead (cli/command.py wraps every command body on registration).

Command modules import torch, transformers and the heavy library modules inside their command
functions, so `--help`, `--version` and the header-only commands start without them. They import
neither this module nor each other (tests/cli/test_cli_commands.py); what several share lives in cli/'s
other modules (workspace.py, plans.py, comparison.py, options.py, ...).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from emo_prune import events
from emo_prune.cli import (
    bench_cmd,
    eval_cmd,
    export_cmd,
    extract_cmd,
    finetune_cmd,
    generate_cmd,
    help_panels,
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
from emo_prune.cli.command import command
from emo_prune.cli.console import out
from emo_prune.process import threads
from emo_prune.version import __version__

__all__ = ["COMMANDS", "app", "command", "main"]

# the library's notes, warnings and progress reach the user through this console from here on
events.listen(out)
# OpenMP's wait policy is read when torch loads, and no command module imports torch before its body
# (emo_prune/cli/__init__.py calls this first; a second call changes nothing)
threads.prepare_environment()

# flags of the whole program that may also follow the command name (`emo-prune run --quiet`);
# `--json` is also every command's own option, so it needs no hoisting
GLOBAL_FLAGS = ("--debug", "--quiet", "-q")


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


@dataclass(frozen=True)
class Group:
    """A command with subcommands (`profile run | merge | show`, `plan export | import`)."""

    help: str
    commands: dict[str, Callable[..., Any]]  # subcommand name -> command body
    cls: type[TyperGroup] | None = None  # routing of its own (profile_cmd.RunByDefault), else Typer's


# every command: name -> its body, a module-level function of one *_cmd module (importable and callable
# from Python), or a Group of them. `emo-prune --help` lists them in this order: the pipeline's steps,
# then the whole chain, then tooling.
COMMANDS: dict[str, Callable[..., Any] | Group] = {
    "init": workspace_cmd.init_command,
    "status": workspace_cmd.status_command,
    "inspect": inspect_cmd.inspect_command,
    "profile": Group(
        help="Per-domain expert usage: tokens routed, router mass, gate weight, REAP saliency, EMO pools.",
        commands={
            "run": profile_cmd.profile_command,
            "merge": profile_cmd.profile_merge_command,
            "show": profile_cmd.profile_show_command,
        },
        cls=profile_cmd.RunByDefault,
    ),
    "select": select_cmd.select_command,
    "extract": extract_cmd.extract_command,
    "verify": verify_cmd.verify_command,
    "finetune": finetune_cmd.finetune_command,
    "merge-back": merge_back_cmd.merge_back_command,
    "eval": eval_cmd.eval_command,
    "generate": generate_cmd.generate_command,
    "pool-index": pool_index_cmd.pool_index_command,
    "export": export_cmd.export_command,
    "plan": Group(
        help="Plans in other tools' formats: vLLM, vLLM-Ascend, llama.cpp, AI2, llm-compressor.",
        commands={"export": plan_cmd.plan_export_command, "import": plan_cmd.plan_import_command},
    ),
    "run": run_cmd.run_command,
    "bench": bench_cmd.bench_command,
}
# hidden other names: alias -> the command it runs
ALIASES = {"ls": "status"}
HELP_ORDER = tuple(COMMANDS)


def _register_commands() -> None:
    for name, body in COMMANDS.items():
        if isinstance(body, Group):
            group = typer.Typer(cls=body.cls, no_args_is_help=True, help=body.help)  # cls None: Typer's own group
            for sub, sub_body in body.commands.items():
                group.command(sub)(command(sub_body))
            app.add_typer(group, name=name)
        else:
            app.command(name)(command(body))
    for alias, name in ALIASES.items():
        app.command(alias, help=f"Same as `emo-prune {name}`.", hidden=True)(command(COMMANDS[name]))


_register_commands()


def main() -> None:
    app(prog_name="emo-prune")
