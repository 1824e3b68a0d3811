"""`.ci/readme` runs the README's Quick start on a fresh clone; here: it reads the commands the README
gives, whole and in order, and every `vlclip` subcommand it names exists."""
import importlib.machinery
import importlib.util
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _readme_check():
    loader = importlib.machinery.SourceFileLoader("ci_readme", str(ROOT / ".ci" / "readme"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("ci_readme", loader))
    loader.exec_module(module)
    return module


def test_the_quick_start_commands_are_read_whole_and_in_order():
    check = _readme_check()
    commands = check.quick_start_commands((ROOT / "README.md").read_text())
    assert commands[:3] == ["make run", "make test", check.SERVE]
    curl = next(c for c in commands if c.startswith("curl"))
    assert "\\" not in curl and "#" not in curl
    body = shlex.split(curl)[shlex.split(curl).index("-d") + 1]
    assert body.startswith("{") and body.endswith("}")  # the JSON body survived joining the lines
    assert all("  " not in c and not c.endswith("\\") for c in commands)
    assert any(c.startswith(".venv/bin/dvc exp run -S train.epochs=") for c in commands)
    assert commands.index(".venv/bin/vlclip promote") < commands.index(
        next(c for c in commands if c.startswith(".venv/bin/dvc exp run")))  # before a new challenger exists


def test_every_vlclip_subcommand_the_readme_names_exists(capsys):
    from vlclip.cli import main

    commands = _readme_check().quick_start_commands((ROOT / "README.md").read_text())
    subcommands = {shlex.split(c)[1] for c in commands if c.startswith(".venv/bin/vlclip ")}
    assert subcommands >= {"serve", "lookup", "promote"}
    for sub in sorted(subcommands):
        with pytest.raises(SystemExit) as done:
            main([sub, "--help"])
        assert done.value.code == 0, sub
