"""A scratch copy of the project with some params overridden, to run the whole DAG on another catalog
without touching this checkout (the end-to-end tests and the yardstick benchmark use it)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

PROJECT_FILES = ("dvc.yaml", ".gitignore")


def merge(base: dict, over: dict) -> dict:
    """`over` merged into `base` key by key (nested dicts merge, other values replace)."""
    for k, v in over.items():
        base[k] = merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return base


def project_env() -> dict[str, str]:
    """The environment with this interpreter's bin first, so stages run `dvc` and `python` from it."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def code_dirs(root: Path) -> list[str]:
    """The top-level packages pyproject.toml ships, plus the Feast repository."""
    packages = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    return [*dict.fromkeys(p.split(".")[0] for p in packages), "feature_repo"]


def copy_project(root: Path, dest: Path, params_override: dict) -> Path:
    """Code, dvc.yaml, params.yaml (with `params_override` merged in) and the plot templates under `dest`,
    as a fresh git + DVC repository; no data, models or stores are copied."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in code_dirs(root):
        shutil.copytree(root / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "data"))
    for name in PROJECT_FILES:
        shutil.copy(root / name, dest / name)
    params = merge(yaml.safe_load((root / "params.yaml").read_text()), params_override)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / ".venv").symlink_to(sys.prefix, target_is_directory=True)  # dvc.yaml's ${python}: this interpreter
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=dest, env=project_env(), check=True, capture_output=True)
    if (root / ".dvc" / "plots").is_dir():  # the plot templates dvc.yaml names
        shutil.copytree(root / ".dvc" / "plots", dest / ".dvc" / "plots", dirs_exist_ok=True)
    return dest
