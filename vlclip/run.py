"""`make run`: `dvc repro` with per-stage wall times, peak memory, and where every artifact is."""
from __future__ import annotations

import re
import resource
import subprocess
import sys
import time

ARTIFACTS = [
    ("demo catalog", "data/demo/ (catalog.csv, images/, queries.csv, ground_truth/)"),
    ("clean catalog + quarantine", "data/catalog/products.parquet, data/catalog/quarantine.csv"),
    ("deduplicated images", "data/dedup/images/, data/dedup/groups.csv"),
    ("grounded crops", "data/ground/crops/, data/ground/boxes.csv, plots/grounding.png"),
    ("refined queries", "data/refine/queries.parquet, data/refine/audit.jsonl"),
    ("validation report", "reports/validation/report.md (+ Data Docs in reports/validation/gx/)"),
    ("checkpoints + curves", "models/<variant>/ (model.pt, history.csv, curve.png)"),
    ("retrieval metrics", "metrics/retrieval.json, metrics/retrieval_by_type.json, plots/hits_at_k.png"),
    ("MLflow", "mlflow/mlflow.db, mlflow/artifacts/ (mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db)"),
    ("registry receipt", "receipts/register.json (models:/vl-clip@champion)"),
    ("embeddings", "data/embeddings/products.parquet"),
    ("Feast online store", "feature_repo/data/online_store.db, receipts/materialize.json"),
    ("Qdrant HNSW shards", "data/index/<product_type>/, receipts/index.json"),
]
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
    print("\nartifacts:")
    for what, where in ARTIFACTS:
        print(f"  {what:<28} {where}")
    print("\nserve it: .venv/bin/vlclip serve   (then open http://127.0.0.1:8000/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
