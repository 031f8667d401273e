"""Messages a user reads (issue 25): help once, the command as typed, progress naming its phase, pool
tables saying where their pools came from, file names never split, help readable at 80 columns."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from emo_prune.cli.console import LineProgress, fit_table, middle_ellipsis


def test_bare_emo_prune_prints_its_help_once(cli):
    result = cli()
    assert result.exit_code == 0
    assert result.output.count("Usage: emo-prune") == 1 and "profile" in result.output


def test_a_usage_error_names_the_command_as_typed(cli):
    result = cli("profile", "--no-such-flag")
    assert result.exit_code == 2
    assert "see `emo-prune profile --help`" in result.stderr and "profile run" not in result.stderr


def test_the_progress_line_names_the_phase_that_ran():
    stream = io.StringIO()
    bars = LineProgress(Console(file=stream, width=120))
    task = bars.add_task("eval m: loading")
    bars.update(task, description="eval m: loaded in 1.0s, loglikelihood (48 requests)")
    bars._line(task, "running")
    bars.close()
    last = stream.getvalue().strip().splitlines()[-1]
    assert last.startswith("eval m: loaded in 1.0s, loglikelihood (48 requests): finished")


def test_a_progress_inside_a_progress_joins_it(monkeypatch):
    """A library call opening its own progress inside a command's or a pipeline step's: one display (rich
    refuses a second live one), the inner block's tasks join it and end with the inner block."""
    from emo_prune.cli.console import Output

    monkeypatch.setattr(LineProgress, "DELAY", 0.0)  # every step long enough to print its lines
    stream = io.StringIO()
    lines = Output(err_console=Console(file=stream, width=120))  # not a terminal: log lines
    with lines.progress() as outer:
        outer.add_task("extract b", total=None)
        with lines.progress() as inner:
            assert inner is outer
            task = inner.add_task("extracting", total=2)
            inner.update(task, completed=2)
        assert "extracting: finished (" in stream.getvalue()  # ends with its block, before the outer one
    printed = stream.getvalue().splitlines()
    assert printed[-1].startswith("extract b: finished (")
    assert sum(line.startswith("extracting: finished") for line in printed) == 1  # not again with the outer one

    terminal = Output(err_console=Console(file=io.StringIO(), force_terminal=True, width=120))
    with terminal.progress() as outer:  # a rich display
        outer.add_task("select 25pct", total=None)
        with terminal.progress() as inner:  # a second live display would raise rich's LiveError
            assert inner is outer
            inner.add_task("greedy selection, layer by layer", total=3)
            assert len(outer.tasks) == 2
        assert [t.description for t in outer.tasks] == ["select 25pct"]  # the inner bar left with its block
    with terminal.progress() as again:  # closed: the next one is a new display
        assert again is not outer


def test_a_failed_inner_progress_says_nothing_finished(monkeypatch):
    from emo_prune.cli.console import Output

    monkeypatch.setattr(LineProgress, "DELAY", 0.0)
    stream = io.StringIO()
    lines = Output(err_console=Console(file=stream, width=120))
    try:
        with lines.progress() as outer:
            outer.add_task("extract b", total=None)
            with lines.progress() as inner:
                inner._line(inner.add_task("extracting", total=None), "running")
                raise OSError("disk full")
    except OSError:
        pass
    assert "finished" not in stream.getvalue()  # the error's one line says what happened
    assert lines._live is None


def _rendered(table: Table, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width)
    console.print(fit_table(table, console))
    return console.file.getvalue()


def test_tables_never_split_a_file_name():
    table = Table(title="edge files")
    for column in ("file", "size", "scores"):
        table.add_column(column)
    name = "quickstart-edge-code-25pct-q4_k_m.gguf"
    scores = "emo_ppl_code 1.955 (1.955), emo_ppl_prose 2.019 (2.017), emo_ppl_math 2.101 (2.100)"
    table.add_row(name, "2.5 MB", scores)
    assert name in _rendered(table)  # whole, on one line; the scores column wraps instead
    long = "a-build-folder-name-" * 5 + "q4_k_m.gguf"
    table.add_row(long, "2.5 MB", scores)
    text = _rendered(table)
    assert middle_ellipsis(long, 40) in text and long not in text  # both ends readable
    assert middle_ellipsis(long, 40).startswith("a-build-folder-name") and middle_ellipsis(long, 40).endswith("q4_k_m.gguf")


def test_generate_names_where_the_pools_came_from(monkeypatch):
    import emo_prune.cli.generate_cmd as generate_cmd
    from emo_prune.cli.console import out

    printed: list[str] = []
    monkeypatch.setattr(
        out, "print", lambda *things, **kw: printed.extend(str(t.title) if isinstance(t, Table) else str(t) for t in things)
    )
    pool = {
        "pools": {"0": [1, 2]},
        "context_coverage": {"0": 0.5},
        "resident_expert_bytes": 1e6,
        "reselections": 0,
        "cache": {"hit_rate": None, "hits": 0, "misses": 2, "bytes_read": 1e6},
    }
    result = {
        "coverage": None,
        "prompt_tokens": 12,
        "prefill_seconds": 1.0,
        "new_tokens": 4,
        "decode_seconds": 1.0,
        "rss_bytes": 1e8,
    }
    generate_cmd.render(result | {"pool": pool})
    assert "pools chosen from the prompt (12 prompt tokens)" in printed
    printed.clear()
    neighbours = [{"domain": "math", "similarity": 0.9}] * 8
    generate_cmd.render(result | {"pool": pool | {"neighbours": neighbours}})
    assert "pools chosen from the 8 indexed requests nearest the prompt (12 prompt tokens)" in printed


def test_long_help_is_grouped_and_readable_at_80_columns(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    panels = {"eval": ("Tasks", "Pools", "Output", "Runtime"), "extract": ("Selection", "Calibration", "Output", "Runtime")}
    for command, expected in panels.items():
        result = cli(command, "--help")
        assert result.exit_code == 0
        for panel in expected:
            assert f"╭─ {panel}" in result.output, (command, panel)
        assert max(len(line) for line in result.output.splitlines()) <= 80
