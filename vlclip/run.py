"""`make run`: `dvc repro` with per-stage wall times, peak memory, and where every artifact is."""
from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from pathlib import Path

STAGE_LINE = re.compile(r"^Running stage '([^']+)'")


def repro(args: list[str]) -> tuple[int, list[tuple[str, float]]]:
    """Stream `dvc repro`, timing each stage from its 'Running stage' line to the next one."""
    timings: list[tuple[str, float]] = []
    current, started = None, time.time()
    proc = subprocess.Popen(["dvc", "repro", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    for line in proc.stdout:
        sys.stdout.write(line)
        m = STAGE_LINE.match(line)
        if m:
            if current:
                timings.append((current, time.time() - started))
            current, started = m.group(1), time.time()
    code = proc.wait()
    if current:
        timings.append((current, time.time() - started))
    return code, timings


def artifacts(root: str = ".") -> list[tuple[str, list[str]]]:
    """(stage, its DVC outputs) in pipeline order, read from dvc.yaml through DVC itself."""
    from dvc.repo import Repo

    with Repo(root) as repo:
        return [(stage.addressing, [str(out.def_path) for out in stage.outs]) for stage in repo.index.stages]


def side_effects(root: str = ".") -> list[tuple[str, str]]:
    """What stages write outside DVC (each proves it with a receipt among its outputs)."""
    from serving.features import FeastParams
    from vlclip.dag import stage_arg
    from vlclip.params import load_params, section
    from vlclip.tracking import MlflowParams, tracking_uri

    params = load_params(Path(root) / "params.yaml")
    uri = tracking_uri(section(MlflowParams, params, "mlflow"), Path(root))
    feast = stage_arg(root, "materialize", "--repo") / section(FeastParams, params, "feast").config
    return [("MLflow", f"{uri}  (browse: mlflow ui --backend-store-uri {uri})"),
            ("Feast online store", f"as configured in {feast}"),
            ("Qdrant Edge shards", f"{stage_arg(root, 'index', '--index')} (index.backend: edge)")]


def main(argv: list[str] | None = None) -> int:
    t0 = time.time()
    code, timings = repro(list(sys.argv[1:] if argv is None else argv))
    print("\nstage timings (wall):")
    for stage, seconds in timings:
        print(f"  {stage:<24} {seconds:7.1f} s")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2  # KiB -> GiB
    print(f"  {'total':<24} {time.time() - t0:7.1f} s   peak memory of a stage process: {peak:.2f} GiB")
    if code != 0:
        print(f"dvc repro failed (exit {code})")
        return code
    print("\nartifacts (dvc.yaml outputs):")
    for stage, outs in artifacts():
        print(f"  {stage:<24} {', '.join(outs)}")
    for what, where in side_effects():
        print(f"  {what:<24} {where}")
    print("\nserve it: .venv/bin/vlclip serve   (then open http://127.0.0.1:8000/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
