"""validate stage: Great Expectations suites over boxes, refined queries and the catalog.

    python -m validation.validate --params params.yaml --boxes data/ground/boxes.csv \
        --queries data/refine/queries.parquet --products data/catalog/products.parquet \
        --quarantine data/catalog/quarantine.csv --out reports/validation

Writes report.json, report.md, report.html (self-contained: opens offline) and GX Data Docs (a file
context under <out>/gx, whose pages load their styles from CDNs) and
exits 1 when any critical expectation fails, so `dvc repro` stops before training on bad data.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from curation.refine import RefineParams
from validation.html import render
from validation.suites import Suite, ValidateParams, build_frames, build_suites
from vlclip.params import load_params, section

__all__ = ["ValidateParams", "validate_tables", "run_suites", "main"]


def validate_tables(frames: dict[str, pd.DataFrame], params: ValidateParams, refine: RefineParams,
                    gx_root: Path | None = None) -> dict[str, Any]:
    """Run every suite on `frames` (see suites.build_frames); returns the report dict."""
    suites = build_suites(params, refine.window, frames)
    results, docs = run_suites(frames, suites, gx_root)
    critical = [r for r in results if not r["success"] and r["severity"] == "critical"]
    warnings = [r for r in results if not r["success"] and r["severity"] != "critical"]
    return {"success": not critical, "evaluated": len(results),
            "critical_failures": [f"{r['suite']}: {r['check']} ({r['expectation']})" for r in critical],
            "warnings": [f"{r['suite']}: {r['check']} ({r['expectation']})" for r in warnings],
            "data_docs": docs, "expectations": results}


def run_suites(frames: dict[str, pd.DataFrame], suites: list[Suite],
               gx_root: Path | None) -> tuple[list[dict[str, Any]], str | None]:
    """One GX checkpoint per suite; with gx_root a file context that also builds Data Docs."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # offline machines: no usage-statistics calls
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx: Any = (gx.get_context(mode="ephemeral") if gx_root is None
                else gx.get_context(mode="file", project_root_dir=str(gx_root)))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = ctx.data_sources.add_pandas(name="vlclip")
    actions: list[Any] = [gx.checkpoint.UpdateDataDocsAction(name="data_docs")] if gx_root is not None else []
    results: list[dict[str, Any]] = []
    for suite in suites:
        batch = source.add_dataframe_asset(name=suite.name).add_batch_definition_whole_dataframe("whole")
        gx_suite = ctx.suites.add(gx.ExpectationSuite(name=suite.name, expectations=suite.expectations))
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite))
        checkpoint = ctx.checkpoints.add(gx.Checkpoint(name=suite.name, validation_definitions=[vd], actions=actions,
                                                       result_format={"result_format": "SUMMARY"}))
        run = checkpoint.run(batch_parameters={"dataframe": frames[suite.table]})
        for suite_result in run.run_results.values():
            results += [_row(suite.name, r) for r in suite_result.results]
    docs = ctx.build_data_docs().get("local_site") if gx_root is not None else None
    return results, docs


def _row(suite: str, r: Any) -> dict[str, Any]:
    cfg, res = r.expectation_config, dict(r.result or {})
    kw = cfg.kwargs
    column = kw.get("column") or ",".join(str(kw[k]) for k in ("column_A", "column_B") if kw.get(k)) or None
    observed = res.get("observed_value")
    if observed is None and res.get("unexpected_percent") is not None:
        observed = f"{res['unexpected_percent']:.2f}% unexpected"
    severity = getattr(cfg.severity, "value", cfg.severity) or "critical"
    return _plain({"suite": suite, "check": (cfg.meta or {}).get("check", cfg.type), "expectation": cfg.type,
                   "column": column, "severity": str(severity), "success": bool(r.success),
                   "observed_value": observed, "unexpected_count": res.get("unexpected_count"),
                   "examples": list(res.get("partial_unexpected_list") or [])[:5],
                   "error": _exception(r.exception_info)})


def _exception(info: Any) -> str | None:
    """GX nests exception info either flat or keyed by metric; return the first message."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    return next((m for v in info.values() if (m := _exception(v))), None)


def _plain(value: Any) -> Any:
    """numpy scalars and tuples -> JSON types."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def markdown(report: dict[str, Any]) -> str:
    head = "| suite | check | expectation | column | severity | ok | observed | unexpected | examples |"
    lines = [f"# Validation: {'PASSED' if report['success'] else 'FAILED'}", "", head,
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["expectations"]:
        examples = ", ".join(str(e) for e in r["examples"])[:80].replace("|", "/")
        observed = r["error"] or r["observed_value"]
        if isinstance(observed, float):
            observed = f"{observed:.4g}"
        lines.append(f"| {r['suite']} | {r['check']} | {r['expectation']} | {r['column'] or ''} | {r['severity']} | "
                     f"{'yes' if r['success'] else 'NO'} | {observed if observed is not None else ''} | "
                     f"{r['unexpected_count'] if r['unexpected_count'] is not None else ''} | {examples} |")
    lines += ["", "The same as a page that opens offline: report.html"]
    if report["data_docs"]:
        lines += [f"Great Expectations Data Docs (their styles load from CDNs): {report['data_docs']}"]
    return "\n".join(lines) + "\n"


def read_inputs(boxes: str, queries: str, products: str, quarantine: str) -> dict[str, pd.DataFrame]:
    ids = {"product_id": str}
    try:
        quarantine_df = pd.read_csv(quarantine, dtype=ids)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{quarantine} is empty: it needs at least the header row,product_id,field,reason") from None
    return build_frames(pd.read_csv(boxes, dtype=ids), pd.read_parquet(queries), pd.read_parquet(products),
                        quarantine_df)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    for name in ("boxes", "queries", "products", "quarantine", "out"):
        ap.add_argument(f"--{name}", required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    vparams, rparams = section(ValidateParams, params, "validate"), section(RefineParams, params, "refine")
    frames = read_inputs(args.boxes, args.queries, args.products, args.quarantine)
    out = Path(args.out)
    shutil.rmtree(out / "gx", ignore_errors=True)  # a file context keeps suites by name; start clean
    out.mkdir(parents=True, exist_ok=True)
    report = validate_tables(frames, vparams, rparams, gx_root=out)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown(report)
    (out / "report.md").write_text(table, encoding="utf-8")
    (out / "report.html").write_text(render(report), encoding="utf-8")
    print(table, end="")
    print(f"validate: the report as a page that opens offline: {(out / 'report.html').resolve().as_uri()}")
    if not report["success"]:
        print(f"validate: {len(report['critical_failures'])} critical expectation(s) failed: "
              + "; ".join(report["critical_failures"]))
        return 1
    print(f"validate: all {report['evaluated']} expectations evaluated, no critical failure")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
