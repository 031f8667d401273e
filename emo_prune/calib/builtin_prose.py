"""`builtin:prose`: English documentation text that ships with Python.

Two parts, both deterministic for a given installation:
  - every topic of the language reference bundled for `help()` (`pydoc_data.topics.topics`, ~90
    topics such as "assignment", "exceptions"), one topic = one document;
  - every standard-library module docstring of at least 400 characters, one module = one document
    (read from the leading string literal only, so the whole stdlib is not parsed).
"""

from __future__ import annotations

import ast
import tokenize
from pathlib import Path

from emo_prune.calib.builtin_code import stdlib_modules

MIN_DOCSTRING = 400
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENCODING, tokenize.INDENT, tokenize.DEDENT}


def leading_docstring(path: Path) -> str | None:
    """The module docstring of a Python file, or None; stops reading at the first statement."""
    try:
        with path.open("rb") as f:
            for token in tokenize.tokenize(f.readline):
                if token.type in _SKIP:
                    continue
                if token.type != tokenize.STRING:
                    return None
                value = ast.literal_eval(token.string)
                return value if isinstance(value, str) else None
    except (OSError, SyntaxError, ValueError, tokenize.TokenError, UnicodeDecodeError):
        return None
    return None


def prose_texts() -> list[str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data; the docstrings still give prose
        topics = {}
    texts = [topics[name].strip() for name in sorted(topics)]
    for path in stdlib_modules():
        doc = leading_docstring(path)
        if doc and len(doc.strip()) >= MIN_DOCSTRING:
            texts.append(doc.strip())
    return texts
