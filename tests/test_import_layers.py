"""Arrows only run down between serving, evaluation and export: read from the source (AST), every import
counted, the ones inside functions too (a lazy import is still an arrow).

Layers (top to bottom): eval (every lm-eval adapter: ours, in pools, llama.cpp's) > serve (pool runtime,
expert store, pool index, generation) and export (GGUF, llama.cpp runner). Inside export, the llama.cpp
runner and the quantizer share the binding module and never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import emo_prune

ROOT = Path(emo_prune.__file__).parent
WATCHED = ("serve", "eval", "export")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """emo_prune module -> the emo_prune modules it imports anywhere in its file (`from a import b`
    counts as a.b when b is a module, else a)."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names
                }
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def package(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def package_edges(graph: dict[str, set[str]]) -> dict[tuple[str, str], list[str]]:
    """(package, package) -> the module imports that make that arrow, for the watched packages."""
    edges: dict[tuple[str, str], list[str]] = {}
    for source, targets in graph.items():
        for target in targets:
            a, b = package(source), package(target)
            if a != b and a in WATCHED and b in WATCHED:
                edges.setdefault((a, b), []).append(f"{source} -> {target}")
    return edges


def cycles(nodes: set[str], edges: set[tuple[str, str]]) -> list[list[str]]:
    """Every simple cycle's node list through DFS (small graphs only)."""
    found = []

    def walk(path: list[str]) -> None:
        for a, b in sorted(edges):
            if a != path[-1]:
                continue
            if b == path[0]:
                found.append([*path, b])
            elif b not in path and b > path[0]:  # each cycle once, from its smallest node
                walk([*path, b])

    for node in sorted(nodes):
        walk([node])
    return found


def test_the_helpers_see_a_cycle():
    # the check itself must be able to fail: a two-package circle and a three-package one
    assert cycles({"a", "b"}, {("a", "b"), ("b", "a")}) == [["a", "b", "a"]]
    assert cycles({"a", "b", "c"}, {("a", "b"), ("b", "c"), ("c", "a")}) == [["a", "b", "c", "a"]]
    assert cycles({"a", "b"}, {("a", "b")}) == []
    graph = {"emo_prune.serve.x": {"emo_prune.eval.y"}, "emo_prune.eval.y": {"emo_prune.serve.x"}}
    assert set(package_edges(graph)) == {("serve", "eval"), ("eval", "serve")}


def test_no_import_cycle_between_serve_eval_and_export():
    edges = package_edges(import_graph())
    circles = cycles(set(WATCHED), set(edges))
    assert not circles, {" > ".join(c): [m for a, b in zip(c, c[1:]) for m in edges[(a, b)]] for c in circles}


def test_serving_never_imports_evaluation():
    edges = package_edges(import_graph())
    assert ("serve", "eval") not in edges, edges.get(("serve", "eval"))
    assert ("export", "eval") not in edges, edges.get(("export", "eval"))  # export.llamacpp no longer reaches into eval


def test_the_quantizer_and_the_llama_cpp_runner_do_not_import_each_other():
    graph = import_graph()
    quantize, runner = "emo_prune.export.quantize", "emo_prune.export.llamacpp"
    assert not (runner in graph[quantize] and quantize in graph[runner])
    assert quantize not in graph[runner] and runner not in graph[quantize]
