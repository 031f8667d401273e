"""Option groups (emo_prune/cli/option_groups.py): shared options declared once, taken as one parameter."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from emo_prune.cli.app import app, command
from emo_prune.cli.option_groups import expand
from emo_prune.cli.options import SelectionFlags
from emo_prune.cli.pool_options import PoolFlags


@dataclass(frozen=True)
class Flags:
    size: Annotated[int, typer.Option("--size")] = 3
    name: Annotated[str | None, typer.Option("--name")] = None


def test_a_group_reaches_typer_as_its_fields_and_the_command_as_one_object():
    seen = []

    @command
    def cmd(
        path: Annotated[str, typer.Argument()],
        flags: Flags = Flags(),
        verbose: Annotated[bool, typer.Option("--verbose")] = False,
    ) -> None:
        seen.append((path, flags, verbose))

    assert list(inspect.signature(cmd).parameters) == ["path", "size", "name", "verbose"]
    one = typer.Typer()
    one.command()(cmd)
    result = CliRunner().invoke(one, ["here", "--size", "5", "--verbose"])
    assert result.exit_code == 0, result.output
    assert seen == [("here", Flags(size=5, name=None), True)]


def test_a_field_that_clashes_with_a_parameter_is_refused_at_definition():
    def cmd(size: int = 1, flags: Flags = Flags()) -> None: ...

    with pytest.raises(TypeError, match="clash.*size"):
        expand(cmd)


@pytest.mark.parametrize(
    ("name", "group"), [("select", SelectionFlags), ("extract", SelectionFlags), ("generate", PoolFlags), ("eval", PoolFlags)]
)
def test_every_command_taking_a_group_offers_all_its_flags(name, group):
    from dataclasses import fields

    click_command = typer.main.get_command(app).commands[name]
    offered = {p.name for p in click_command.params}
    assert {f.name for f in fields(group)} <= offered
