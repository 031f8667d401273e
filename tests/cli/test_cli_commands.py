"""The CLI is a thin shell of importable command functions (issue 26, item 4).

Every command `emo-prune` registers is a module-level function of one `cli/*_cmd.py` module, callable from
Python; cli/app.py alone registers them. No command module imports another command module or app.py, and
no library module outside cli/ imports the CLI (the console included): read from the files' syntax trees,
so an import hidden inside a function counts too.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import typer

import emo_prune
from emo_prune.cli.app import ALIASES, COMMANDS, Group, app

PACKAGE = Path(emo_prune.__file__).parent
CLI = PACKAGE / "cli"
COMMAND_MODULES = sorted(p.stem for p in CLI.glob("*_cmd.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its syntax tree: `import a.b` -> a.b;
    `from a import b` -> a and a.b (b may be a module); relative imports resolved against emo_prune.cli."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # `from . import x` inside emo_prune/cli
                parent = "emo_prune.cli".rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def registered_callbacks(command: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """(name, subname, ...) -> the Python function behind every command of the click tree."""
    if hasattr(command, "commands"):  # a group (typer's click may be its own copy: no isinstance)
        found: dict[tuple[str, ...], object] = {}
        for name, sub in command.commands.items():
            found |= registered_callbacks(sub, (*path, name))
        return found
    return {path: command.callback}


def unwrap(fn: object) -> object:
    """The body under cli.command.command and option_groups.expand (both keep `__wrapped__`)."""
    return inspect.unwrap(fn)  # type: ignore[arg-type]


def test_every_registered_command_is_a_module_level_function_of_a_command_module():
    callbacks = registered_callbacks(typer.main.get_command(app))
    # 14 commands, profile's 3 and plan's 2 subcommands, and the hidden `ls`
    assert len(callbacks) == 20, sorted(callbacks)
    for path, callback in callbacks.items():
        body = unwrap(callback)
        module_name = getattr(body, "__module__", "")
        assert module_name.startswith("emo_prune.cli.") and module_name.endswith("_cmd"), (path, module_name)
        module = importlib.import_module(module_name)
        # importable by its name, and not a closure: `from emo_prune.cli.verify_cmd import verify_command`
        assert getattr(module, body.__name__, None) is body, (path, body.__qualname__)
        assert body.__qualname__ == body.__name__, (path, body.__qualname__)


def test_the_table_names_every_command_once():
    bodies = [b for entry in COMMANDS.values() for b in (entry.commands.values() if isinstance(entry, Group) else [entry])]
    assert len(bodies) == len(set(bodies))
    # and it is what Typer registered: each body of the table sits behind exactly the name the table gives it
    tree = typer.main.get_command(app)
    for alias, name in ALIASES.items():
        assert unwrap(tree.commands[alias].callback) is COMMANDS[name]
    for name, entry in COMMANDS.items():
        assert name in tree.commands, name
        subs = entry.commands if isinstance(entry, Group) else {(): entry}
        for sub, body in subs.items():
            command = tree.commands[name] if sub == () else tree.commands[name].commands[sub]
            assert unwrap(command.callback) is body, (name, sub)


def test_a_command_is_callable_from_python(tiny, monkeypatch):
    """No CLI runner: the function itself, with keyword arguments; its result reaches the console."""
    from emo_prune.cli.console import out
    from emo_prune.cli.inspect_cmd import inspect_command

    model = tiny("emo")
    results: list = []
    monkeypatch.setattr(out, "result", lambda data, human=None: results.append(data))
    inspect_command(model_dir=model)
    assert [r["family"] for r in results] == ["emo"] and results[0]["moe_layers"] > 0


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_a_command_module_imports_no_other_command_module_nor_app(module):
    imports = imported_modules(CLI / f"{module}.py")
    others = {f"emo_prune.cli.{m}" for m in COMMAND_MODULES if m != module} | {"emo_prune.cli.app"}
    assert not imports & others, f"cli/{module}.py imports {sorted(imports & others)}"


def test_the_check_sees_imports_inside_functions(tmp_path):
    """The test above can fail: an import hidden in a function body, or a `from emo_prune.cli import x_cmd`."""
    source = tmp_path / "x_cmd.py"
    source.write_text("def f():\n    from emo_prune.cli import select_cmd\n    import emo_prune.cli.app\n")
    assert {"emo_prune.cli.select_cmd", "emo_prune.cli.app"} <= imported_modules(source)


def test_no_library_module_imports_the_cli():
    """The library reaches the user through emo_prune.events; the console is the CLI's (cli/console.py)."""
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            n for n in imported_modules(path) if n == "emo_prune.cli" or n.startswith("emo_prune.cli.")
        )
        for path in PACKAGE.rglob("*.py")
        if CLI not in path.parents
    }
    assert not {k: v for k, v in offenders.items() if v}
    assert not (PACKAGE / "console.py").exists()
