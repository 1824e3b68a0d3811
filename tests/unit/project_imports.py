"""The project's own import graph, read from source with ast (nothing is imported): which project
modules a module imports at any depth (function-level imports run too), what each stage's entry
module reaches, and the data directories a module reads next to itself (`Path(__file__).parent / "x"`).
Also the stages of dvc.yaml, a `foreach` stage once per variant, and the module each runs."""
from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from vlclip.sandbox import code_dirs

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = tuple(d for d in code_dirs(ROOT) if d != "feature_repo")  # what pyproject.toml ships


def module_file(name: str) -> Path | None:
    """'curation.refine' -> ROOT/curation/refine.py (or the package's __init__.py); None if not ours."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def imports_of(path: Path) -> set[Path]:
    """The project modules `path` names in its import statements (the leaf module, not its parents)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {f for a in node.names if (f := module_file(a.name))}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:  # `from pkg import sub` imports a module, `from mod import name` a name
                f = module_file(f"{node.module}.{a.name}") or module_file(node.module)
                if f:
                    out.add(f)
    return out - {path}


def parents(path: Path) -> set[Path]:
    """The __init__.py of every package above `path`: importing a module runs them first."""
    out, d = set(), path.parent
    while d != ROOT and (d / "__init__.py").is_file():
        out.add(d / "__init__.py")
        d = d.parent
    return out - {path}


def data_dirs(path: Path) -> set[Path]:
    """Directories a module reads beside itself: `Path(__file__).parent / "name"`."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant)
                and isinstance(node.left, ast.Attribute) and node.left.attr == "parent"
                and ast.unparse(node.left.value) == "Path(__file__)"):
            out.add(path.parent / str(node.right.value))
    return out


def reached(module: str) -> set[Path]:
    """Every project file that running `python -m module` can execute or read."""
    start = module_file(module)
    assert start is not None, f"{module} is not a project module"
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [p for p in imports_of(path) | parents(path) if p not in seen]
    return seen | {d for p in seen for d in data_dirs(p)}


def stage_module(cmd: str) -> str:
    """The module a stage's `${python} -m ...` command runs."""
    return re.search(r"\$\{python\} -m ([\w.]+)", cmd).group(1)


def _render(template: dict, key: str, item: dict) -> dict:
    text = yaml.safe_dump(template).replace("${key}", key)
    for field, value in item.items():
        text = text.replace("${item." + field + "}", str(value))
    return yaml.safe_load(text)


def stages(root: Path = ROOT) -> Iterator[tuple[str, str, dict]]:
    """(DVC address, stage name, stage) for every stage; a `foreach: ${variants}` stage once per variant
    of params.yaml, with the variant's params and dvc.yaml vars merged into `${item}`."""
    dvc, params = (yaml.safe_load((root / f).read_text()) for f in ("dvc.yaml", "params.yaml"))
    paths = next(v["variants"] for v in dvc["vars"] if "variants" in v)
    merged = {k: {**v, **paths.get(k, {})} for k, v in params["variants"].items()}
    for name, stage in dvc["stages"].items():
        if "foreach" in stage:
            assert stage["foreach"] == "${variants}", name
            for key, item in merged.items():
                yield f"{name}@{key}", name, _render(stage["do"], key, item)
        else:
            yield name, name, stage
