"""Text from files reaches a terminal inert: no control character, bidi control or Rich markup acts.

A terminal is simulated by Rich consoles forced to one (`force_terminal=True`, truecolor), so styles and
hyperlinks WOULD be emitted: the output may hold emo-prune's own SGR colour codes (ESC [ ... m) and
nothing else that a terminal acts on (no other ESC, no C1 byte, no bidi control, no OSC 8 hyperlink).
Commands run with --quiet there: a forced terminal would draw progress bars (cursor codes of our own)
on stderr beside the error line; errors are printed all the same.
"""

from __future__ import annotations

import json
import re
import struct

import pytest
import yaml
from hardening_helpers import one_line_error, snapshot
from rich.console import Console
from rich.text import Text

from emo_prune.cli.console import out
from emo_prune.common.text import inert
from emo_prune.errors import PlanError

SGR = re.compile(r"\x1b\[[0-9;]*m")  # emo-prune's own colours on a forced terminal
ACTIVE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
OSC8 = "\x1b]8;"

# what a hostile file puts in a name: terminal reset, an OSC 8 hyperlink, the 8-bit CSI, a right-to-left
# override, and Rich markup that would become a hyperlink
RESET = "code\x1bc"
LINK = "\x1b]8;;https://evil.example\x07code\x1b]8;;\x07"
CSI8 = "code\x9b2J"
RLO = "code\u202etxt.exe"
MARKUP = "[link=https://evil.example]code[/link]"
HOSTILE = [RESET, LINK, CSI8, RLO, MARKUP]


def assert_inert(output: str) -> None:
    """Nothing in `output` that a terminal acts on, besides emo-prune's own colours."""
    assert OSC8 not in output, output
    rest = SGR.sub("", output)
    assert "\x1b" not in rest and not ACTIVE.search(rest), ascii(rest)


def assert_shown_escaped(name: str, line: str) -> None:
    """`name` appears in `line` as its escapes (markup as written, it is plain text once escaped)."""
    assert (name in line) == (name == MARKUP), ascii(line)
    assert SGR.sub("", line).count("evil.example") <= 2 and ("code" in line)


@pytest.fixture
def terminal():
    """The output sink's consoles forced to a colour terminal (whatever pytest's capture is), restored after."""
    saved = out.console, out.err_console
    out.console = Console(force_terminal=True, color_system="truecolor", width=200, highlight=False, soft_wrap=True)
    out.err_console = Console(
        stderr=True, force_terminal=True, color_system="truecolor", width=200, highlight=False, soft_wrap=True
    )
    yield
    out.console, out.err_console = saved


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("code\x1bc", "code\\x1bc"),  # ESC c: full terminal reset
        ("a\x1b[2Jb", "a\\x1b[2Jb"),  # CSI clear screen (the '[2J' is no markup tag)
        (LINK, "\\x1b]8;;https://evil.example\\x07code\\x1b]8;;\\x07"),  # OSC 8 hyperlink, BEL-terminated
        ("code\x9b2J", "code\\x9b2J"),  # C1 CSI 0x9b: ESC [ in one byte
        ("x\x85y", "x\\x85y"),  # C1 NEL (a line break on some terminals)
        ("\x00\x07\x08\x7f", "\\x00\\x07\\x08\\x7f"),  # NUL, BEL, backspace, DEL
        ("a\nb\rc\td", "a\\x0ab\\x0dc\\x09d"),  # a name is one line: newline, CR and tab shown
        ("code\u202etxt.exe", "code\\u202etxt.exe"),  # right-to-left override
        ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),  # embeddings and pop
        ("\u2066x\u2067y\u2068z\u2069", "\\u2066x\\u2067y\\u2068z\\u2069"),  # isolates
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),  # LRM, RLM, Arabic letter mark
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),  # line and paragraph separators
        (MARKUP, "\\[link=https://evil.example]code\\[/link]"),  # Rich markup: printed as written
        ("[bold red]x[/]", "\\[bold red]x\\[/]"),
        ("ends with \\", "ends with \\\\"),  # a trailing backslash would escape emo-prune's next tag
        ("café 数学 [1, 2]", "café 数学 [1, 2]"),  # printable text and non-tag brackets are left alone
    ],
)
def test_inert_escapes_every_active_character(text: str, shown: str) -> None:
    assert inert(text) == shown
    # printed through Rich markup on a forced terminal, it is the escaped text, literally
    console = Console(force_terminal=True, color_system="truecolor", width=500, record=True)
    with console.capture() as capture:
        console.print(f"[bold]name:[/] {inert(text)}", highlight=False, soft_wrap=True)
    printed = capture.get()
    assert_inert(printed)
    assert SGR.sub("", printed).rstrip("\n") == "name: " + Text.from_markup(inert(text)).plain


def test_inert_without_markup_and_with_kept_characters() -> None:
    """Sinks that parse no markup (Markdown files, streamed text) keep brackets; generated text keeps its lines."""
    assert inert(MARKUP, markup=False) == MARKUP
    assert inert("line 1\n\tx\x1bc", markup=False, keep="\n\t") == "line 1\n\tx\\x1bc"
    assert inert(42) == "42"


@pytest.mark.parametrize("name", HOSTILE)
def test_error_lines_are_inert(terminal, capsys, name: str) -> None:
    """The one render point of errors: a message that quotes a file's string raw carries nothing active."""
    out.error(PlanError(f"pool index x.safetensors: domain {name} is bad"))
    err = capsys.readouterr().err
    assert_inert(err)
    assert err.count("\n") == 1


def test_warnings_and_notes_are_inert(terminal, capsys) -> None:
    for name in HOSTILE:
        out.warn(f"domain {name}")
        out.note(f"domain {name}")
    assert_inert(capsys.readouterr().err)


def test_neighbours_and_profile_tables_are_inert(terminal, capsys) -> None:
    """Renderers escape file-derived names themselves too (defence in depth behind the load-time checks)."""
    from emo_prune.cli import generate_cmd, profile_cmd

    neighbours = [{"entry": i, "similarity": 0.5, "domain": name} for i, name in enumerate(HOSTILE)]
    out.print(generate_cmd.neighbours_line(neighbours))
    domain = {"tokens": 3, "documents": 1, "coverage": {}, "top_experts": [None], "entropy": [None]}
    report = {"model": LINK, "layers": 1, "domains": {name: domain for name in HOSTILE}, "overlap": []}
    report["overlap"] = [{"domains": [RESET, MARKUP], "fraction": 0.25, "jaccard": [None], "min": 0.0, "mean": 0.0}]
    profile_cmd.render(report, RLO)
    printed = capsys.readouterr().out
    assert_inert(printed)
    assert "\\[link=https://evil.example]" not in printed  # the escape itself is consumed by Rich ...
    assert "[link=https://evil.example]code[/link]" in printed  # ... which prints the markup as written


def _index_with_domain(source, tmp_path, name: str):
    """A pool index of `source` whose first entry's domain is `name` (header rewritten, data unchanged)."""
    from hardening_helpers import read_raw_header, write_raw_header

    from emo_prune.serve.index_build import IndexPair, index_pairs
    from emo_prune.serve.index_file import META_KEY

    good = index_pairs(source, [IndexPair("math", [5, 17, 33, 2], [250, 7, 61]), IndexPair("code", [30, 31], [44, 3])])
    path = good.save(tmp_path / "index" / "pools.safetensors")
    header, data = read_raw_header(path)
    meta = json.loads(header["__metadata__"][META_KEY])
    meta["domains"][0] = name
    header["__metadata__"][META_KEY] = json.dumps(meta)
    write_raw_header(path, header, data)
    return path


@pytest.mark.parametrize("name", HOSTILE)
def test_a_pool_index_domain_is_refused_inert(cli, terminal, source_model, tmp_path, name: str) -> None:
    index = _index_with_domain(source_model, tmp_path, name)
    before = snapshot(tmp_path)
    result = cli(
        "--quiet",
        "generate",
        source_model,
        "--pool",
        "0.5",
        "--pool-index",
        index,
        "--prompt",
        "def add(a, b):",
        "--max-new-tokens",
        2,
    )
    line = one_line_error(result, "pool index", "domain name", "1-64 ASCII letters")
    assert_inert(result.output)
    assert_shown_escaped(name, line)
    assert snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def profile_file(source_model, tmp_path_factory):
    """A real profile of `source_model` (domain 'math'), written once."""
    from emo_prune.profile.runner import ProfileSettings, profile_to_file

    path = tmp_path_factory.mktemp("profile") / "p.safetensors"
    profile_to_file(source_model, ["math=builtin:math:calib"], path, None, ProfileSettings(max_tokens=64, seq_len=32))
    return path


def _profile_with_domain(profile_file, tmp_path, name: str):
    """`profile_file` with its domain renamed to `name` (metadata and tensor names), else unchanged."""
    from safetensors.numpy import load_file, save_file

    from emo_prune.profile.store import META_KEY

    with open(profile_file, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(json.loads(f.read(n))["__metadata__"][META_KEY])
    tensors = {k.replace("math/", f"{name}/", 1): v for k, v in load_file(profile_file).items()}
    meta["domains"] = {name: meta["domains"]["math"]}
    path = tmp_path / "hostile.profile.safetensors"
    save_file(tensors, path, metadata={META_KEY: json.dumps(meta)})
    return path


@pytest.mark.parametrize("name", HOSTILE)
def test_a_profile_domain_is_refused_inert(cli, terminal, profile_file, tmp_path, name: str) -> None:
    path = _profile_with_domain(profile_file, tmp_path, name)
    before = snapshot(tmp_path)
    result = cli("--quiet", "profile", "show", path)
    line = one_line_error(result, "profile error:", str(path), "domain name", "1-64 ASCII letters")
    assert_inert(result.output)
    assert_shown_escaped(name, line)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", HOSTILE)
def test_a_calibration_domain_is_refused_inert(cli, terminal, source_model, tmp_path, name: str) -> None:
    """`profile --calib` JSONL records name their domain: refused before the model loads, nothing written."""
    calib = tmp_path / "calib.jsonl"
    calib.write_text(json.dumps({"text": "def add(a, b):\n    return a + b\n", "domain": name}) + "\n")
    before = snapshot(tmp_path)
    result = cli("--quiet", "profile", source_model, "--calib", calib, "--out", tmp_path / "p.safetensors")
    one_line_error(result, "calibration error:", "domain name", "DOMAIN=SOURCE")
    assert_inert(result.output)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", HOSTILE)
def test_a_recipe_name_is_refused_inert(cli, terminal, source_model, tmp_path, name: str) -> None:
    recipe = {"name": name, "model": str(source_model), "calibration": {"sources": ["builtin:math:calib"]}, "budgets": [0.5]}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True))
    before = snapshot(tmp_path)
    result = cli("--quiet", "run", path, "--out", tmp_path / "run")
    one_line_error(result, "recipe error:", "name:", "is not a folder name")
    assert_inert(result.output)
    assert snapshot(tmp_path) == before


def test_markdown_reports_hold_no_control_characters() -> None:
    """An eval report's Markdown quotes task and metric names (a task folder's YAML): written inert."""
    from emo_prune.eval.results import EvalReport, MetricScore, ModelEval, TaskScores

    task = f"task{RLO}"
    scores = TaskScores(task=task, metrics={f"acc{RESET}": MetricScore(0.5, 0.01, True)}, samples=4)
    model = ModelEval(model={"path": "m"}, settings={}, tasks={task: scores})
    markdown = EvalReport(model=model).markdown()
    assert not ACTIVE.search(markdown.replace("\n", "")) and "\x1b" not in markdown
    assert "taskcode\\u202etxt.exe" in markdown and "acccode\\x1bc" in markdown
