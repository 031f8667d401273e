"""Context -> answer pairs: the data of pool indexes, answer-only fine-tuning and the `emo_answer_*`
offline tasks, cut from documents by one rule, or read as they are.

A JSONL file of {"context", "answer"[, "domain"]} records is taken as it is (the requests a user serves);
any other document is cut by one rule: Python functions with a docstring (signature + docstring -> body),
else a "...\nAnswer:" problem (question -> answer), else paragraphs (the ones so far -> the next). The
offline eval tasks (`emo_prune.eval.taskdata`), the pool index (`emo_prune.serve.index_build`) and
fine-tuning data (`emo_prune.train.data`) all cut with these functions.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from emo_prune.calib.document import domain_problem, is_domain
from emo_prune.errors import CalibrationError

ANSWER_CHARS = 800  # an answer is cut at a line end before this many characters
CONTEXT_CHARS = 1200  # a prose context keeps its last paragraphs up to this many characters
FUNCTIONS_PER_MODULE, PARAGRAPHS_PER_DOC = 2, 4


def clip(text: str, limit: int) -> str:
    """`text` cut at the last line end before `limit` characters (or at `limit` if a line is longer)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip()


def code_answers(source: str) -> list[dict]:
    """Functions of one module that have a docstring and a body: signature + docstring -> body."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.splitlines(keepends=True)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or ast.get_docstring(node) is None:
            continue
        if len(node.body) < 2 or node.decorator_list:
            continue
        doc_end, body_end = node.body[0].end_lineno, node.end_lineno  # 1-based, inclusive
        context = "".join(lines[node.lineno - 1 : doc_end])
        answer = "".join(lines[doc_end:body_end]).rstrip()  # indentation kept: it is part of the answer
        if len(answer) > ANSWER_CHARS:
            answer = answer[: max(answer.rfind("\n", 0, ANSWER_CHARS), ANSWER_CHARS // 2)].rstrip()
        if context.strip() and answer.strip():
            found.append({"context": context, "answer": answer})
    return found[:FUNCTIONS_PER_MODULE]


def prose_answers(text: str) -> list[dict]:
    """The paragraphs so far (the last ones, up to CONTEXT_CHARS) -> the next paragraph."""
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    found = []
    for i in range(1, len(paragraphs)):
        context = "\n\n".join(paragraphs[:i])[-CONTEXT_CHARS:].lstrip()
        found.append({"context": context + "\n\n", "answer": clip(paragraphs[i], ANSWER_CHARS)})
        if len(found) == PARAGRAPHS_PER_DOC:
            break
    return found


def math_answers(problem: str) -> list[dict]:
    question, sep, answer = problem.partition("\nAnswer:")
    return [{"context": question + sep, "answer": " " + answer.strip()}] if sep else []


def context_answer_pairs(text: str) -> list[dict[str, str]]:
    """A document's context -> answer pairs: Python functions, else a problem and its answer, else paragraphs."""
    return code_answers(text) or math_answers(text) or prose_answers(text)


def text_pairs(sources: list[str], seed: int = 0) -> list[tuple[str, dict[str, str]]]:
    """(domain, {"context", "answer"}) of every source, in order: a JSONL file of {"context", "answer"
    [, "domain"]} records as it is (the requests a user serves, verbatim), any other source's documents
    cut by `context_answer_pairs`."""
    from emo_prune.calib import load_documents
    from emo_prune.calib.sources import parse_source

    found: list[tuple[str, dict[str, str]]] = []
    for spec in sources:
        source = parse_source(spec)
        path = Path(source.target)
        if source.kind == "path" and path.suffix.lower() == ".jsonl" and holds_pairs(path):
            found += read_pair_records(path, source.domain)
        else:
            found += [(doc.domain, pair) for doc in load_documents([spec], seed=seed) for pair in context_answer_pairs(doc.text)]
    for domain, _ in found:
        if not is_domain(domain):
            raise CalibrationError(domain_problem(domain, "pool index") + "; name the domain with DOMAIN=SOURCE")
    return found


def holds_pairs(path: Path) -> bool:
    """Whether a JSONL file's first record has a "context" field (pairs), not "text" (documents)."""
    try:
        with path.open(encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        record = json.loads(first) if first else None
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # the documents reader reports what is wrong with it
    return isinstance(record, dict) and "context" in record


def read_pair_records(path: Path, domain: str | None) -> list[tuple[str, dict[str, str]]]:
    """{"context", "answer"[, "domain"]} records of a JSONL file; the domain: the spec's DOMAIN=, else the
    record's, else the file's stem."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"cannot read {path} as UTF-8 text: {exc}") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise CalibrationError(f"{path}:{number} is not JSON ({exc})") from None
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("context", "answer")):
            raise CalibrationError(f'{path}:{number}: expected {{"context": "...", "answer": "..."}} (strings)')
        name = domain or record.get("domain") or path.stem
        if not isinstance(name, str):
            raise CalibrationError(f"{path}:{number}: field 'domain' must be a string")
        records.append((name, {"context": record["context"], "answer": record["answer"]}))
    return records


def tokenize_pair(tokenizer: Any, context: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of a context and its answer as lm-eval's loglikelihood cuts them: the context's trailing
    spaces move to the answer, and the answer is the whole text's tokens after the context's."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, answer = context[:-spaces], context[-spaces:] + answer
    ctx = tokenizer(context)["input_ids"]
    whole = tokenizer(context + answer)["input_ids"]
    return ctx, whole[len(ctx) :]
