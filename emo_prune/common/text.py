"""Text for the user's eyes: counted things in messages, and strings from files made inert.

`plural(1, "shard")` -> "1 shard", `plural(3, "shard")` -> "3 shards".

`inert(s)` is the one way a string that comes from a file (a domain name, a recipe or build name, a
tensor name, a config value, a pool index's neighbours, a file name) reaches a terminal or a report:
control characters and bidi controls are written as visible escapes and Rich markup is escaped, so a
file cannot move the cursor, reset the terminal, reorder a line or plant a hyperlink. It lives here, a
torch-free base module, rather than in `cli/console.py`: library code (error messages, Markdown reports)
uses it too, and nothing outside `cli/` imports the console.
"""

from __future__ import annotations

import re

from rich.markup import escape


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


# What a terminal acts on instead of printing: C0 (incl. ESC 0x1b), DEL, C1 (incl. the 8-bit CSI 0x9b,
# which some terminals honour like ESC [), and the Unicode controls that reorder or break a line: bidi
# embeddings / overrides U+202A-202E, isolates U+2066-2069, marks U+200E / U+200F / U+061C, and the
# line / paragraph separators U+2028 / U+2029.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: object, *, markup: bool = True, keep: str = "") -> str:
    """`text` (any object, as str()) safe to print: every unsafe character above as `\\x1b` / `\\u202e`,
    except those in `keep` (e.g. "\\n\\t" for generated text); with `markup`, Rich markup escaped too, so
    `[link=https://x]y[/link]` prints as written (False for sinks that do not parse markup: a Markdown
    file, `typer.echo`)."""
    text = str(text)
    safe = _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _visible(m), text)
    return escape(safe) if markup else safe
