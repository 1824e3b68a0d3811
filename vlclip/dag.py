"""dvc.yaml is the one place data paths live: entry points outside the DAG (the service, the Feast
lookup) read the paths a stage was given from its command line there instead of repeating them."""
from __future__ import annotations

import shlex
from pathlib import Path

import yaml

DVC_YAML = "dvc.yaml"


def stage_arg(root: str | Path, stage: str, flag: str) -> Path:
    """The value of `flag` in `stage`'s cmd, resolved against the project `root`."""
    path = Path(root) / DVC_YAML
    stages = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stages", {})
    if stage not in stages or "cmd" not in stages[stage]:
        raise KeyError(f"{path} has no stage {stage!r} with a cmd")
    words = shlex.split(stages[stage]["cmd"])
    if flag not in words[:-1]:
        raise KeyError(f"{path}: stage {stage!r} passes no {flag} (cmd: {stages[stage]['cmd']})")
    value = words[words.index(flag) + 1]
    if "${" in value:
        raise ValueError(f"{path}: stage {stage!r} {flag} {value} is templated; give a plain path")
    return Path(root) / value
