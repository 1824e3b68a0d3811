"""Progress of a long stage: items done, items/s and time left on one line every few seconds, and a
summary (items, seconds, items/s, peak RSS) the stage prints and keeps with its outputs."""
from __future__ import annotations

import json
import resource
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    def __init__(self, label: str, total: int, every_s: float = 10.0, out=print):
        self.label, self.total, self.every_s, self.out = label, total, every_s, out
        self.done, self.started = 0, time.perf_counter()
        self._last = self.started

    def add(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self.every_s or self.done >= self.total:
            self._last = now
            self.out(self.line(now), flush=True)

    def line(self, now: float | None = None) -> str:
        spent = (now or time.perf_counter()) - self.started
        rate = self.done / spent if spent > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = _clock(left) if left == left else "?"
        return (f"{self.label}: {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f}%), "
                f"{rate:.1f}/s, {_clock(spent)} spent, {eta} left")

    def summary(self) -> dict:
        return figures(self.done, time.perf_counter() - self.started)

    def save(self, path: str | Path | None, **extra) -> dict:
        """Write the summary (and extra figures) as JSON next to the stage's outputs; -> the summary."""
        report = {**self.summary(), **extra}
        if path:
            write_report(path, report)
        return report


def figures(items: int, seconds: float) -> dict:
    """Items, seconds, items/s and this process's peak RSS: what a stage reports of a run."""
    return {"items": items, "seconds": round(seconds, 2),
            "items_per_s": round(items / seconds, 2) if seconds > 0 else None, "peak_rss_mb": round(peak_rss_mb(), 1)}


def write_report(path: str | Path, report: dict) -> None:
    """A figures file (stage throughput, benchmark results): indented JSON, its folder made."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
