"""The validation report as one self-contained HTML page: inline styles, no script or font from
anywhere, so it reads the same on a machine with no network (Great Expectations' own Data Docs load
their styles from CDNs and render bare offline)."""
from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff; font-weight: 600; }
.passed { background: #2e7d32; } .failed { background: #c62828; }
.legend span { display: inline-block; margin-right: 16px; }
.swatch { display: inline-block; width: 12px; height: 12px; vertical-align: middle; margin-right: 4px; }
table { border-collapse: collapse; margin: 8px 0 24px; width: 100%; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
tr.ok td.status { background: #e8f5e9; } tr.critical td.status { background: #ffcdd2; }
tr.warning td.status { background: #fff3cd; }
td.examples { font-family: ui-monospace, monospace; font-size: 12px; color: #555; }
"""
_COLUMNS = ("check", "expectation", "column", "severity", "status", "observed", "unexpected", "examples")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return escape(f"{value:.4g}" if isinstance(value, float) else str(value))


def _row(r: dict[str, Any]) -> str:
    kind = "ok" if r["success"] else ("critical" if r["severity"] == "critical" else "warning")
    status = {"ok": "passed", "critical": "FAILED", "warning": "failed (warning)"}[kind]
    examples = ", ".join(str(e) for e in r["examples"])[:200]
    cells = [r["check"], r["expectation"], r["column"], r["severity"], status, r["error"] or r["observed_value"],
             r["unexpected_count"], examples]
    tds = "".join(f'<td class="{name}">{_cell(v)}</td>' for name, v in zip(_COLUMNS, cells))
    return f'<tr class="{kind}">{tds}</tr>'


def render(report: dict[str, Any], title: str = "Validation") -> str:
    """The report dict of validation.validate as an HTML page: verdict, legend, one table per suite."""
    verdict = "passed" if report["success"] else "failed"
    suites: dict[str, list[dict[str, Any]]] = {}
    for r in report["expectations"]:
        suites.setdefault(r["suite"], []).append(r)
    head = "".join(f"<th>{name}</th>" for name in _COLUMNS)
    tables = "".join(f'<h2>{escape(name)}</h2><table data-suite="{escape(name)}"><tr>{head}</tr>'
                     + "".join(_row(r) for r in rows) + "</table>" for name, rows in suites.items())
    failures = "".join(f"<li>{escape(f)}</li>" for f in report["critical_failures"])
    legend = ('<p class="legend"><span><i class="swatch" style="background:#e8f5e9"></i>passed</span>'
              '<span><i class="swatch" style="background:#ffcdd2"></i>critical: fails the run</span>'
              '<span><i class="swatch" style="background:#fff3cd"></i>warning: reported, the run goes on</span></p>')
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>"
            f'<h1>{escape(title)} <span class="verdict {verdict}">{verdict.upper()}</span></h1>'
            f"<p>{report['evaluated']} expectations evaluated, {len(report['critical_failures'])} critical "
            f"failure(s), {len(report['warnings'])} warning(s).</p>"
            + (f"<ul>{failures}</ul>" if failures else "") + legend + tables + "</body></html>\n")
