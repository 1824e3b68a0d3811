"""Dependencies run one way: vlclip (base) <- curation, validation, training <- registry <- serving.

Read from source with ast, function-level imports included. Entry points (vlclip.cli, vlclip.run) may
import every layer; the fixtures (demo_catalog, yardstick) may import only the base, and nothing
imports them.
"""
from __future__ import annotations

import ast

from project_imports import ROOT, all_modules, imports_of, module_name

RANK = {"vlclip": 0, "curation": 1, "demo_catalog": 1, "yardstick": 1, "training": 2, "validation": 2,
        "registry": 3, "serving": 4}
ENTRY_POINTS = {"vlclip.cli", "vlclip.run"}
# Within one rank a package may import only these others (validation checks the refiner's guards).
SIDEWAYS = {("validation", "curation")}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


def _package(name: str) -> str:
    return name.split(".")[0]


def test_every_package_has_a_rank():
    assert {_package(module_name(p)) for p in all_modules()} == set(RANK)


def test_no_upward_or_sideways_import():
    bad = []
    for path in all_modules():
        me = module_name(path)
        if me in ENTRY_POINTS:
            continue
        for dep in imports_of(path):
            a, b = _package(me), _package(module_name(dep))
            if a != b and not (RANK[b] < RANK[a] or (a, b) in SIDEWAYS):
                bad.append(f"{me} imports {module_name(dep)}")
    assert bad == []


def test_no_pipeline_module_imports_a_fixture():
    fixtures = {"demo_catalog", "yardstick"}
    users = {module_name(p) for p in all_modules() for d in imports_of(p)
             if _package(module_name(d)) in fixtures and _package(module_name(p)) != _package(module_name(d))}
    assert users == set()


def test_module_imports_have_no_cycle():
    graph = {p: imports_of(p) for p in all_modules()}
    state: dict = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                raise AssertionError(" -> ".join(module_name(p) for p in [*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])


def test_modules_and_functions_are_screen_sized():
    too_long = []
    for path in all_modules():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}() {n} lines")
    assert too_long == []


def test_the_checks_see_function_level_imports(tmp_path):
    """The layer test is only as good as the import reader: a lazy upward import must be seen."""
    probe = ROOT / "training" / "evaluate.py"
    assert ROOT / "vlclip" / "encoder.py" in imports_of(probe)  # imported inside main()
