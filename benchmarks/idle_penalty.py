"""What a pause costs the next piece of work on this machine, with no service involved.

    .venv/bin/python benchmarks/idle_penalty.py --pause 0.5 --json reports/idle_penalty.json

In one thread, each task runs back to back and then each time after `--pause` seconds of sleep; the
ratio of the two medians is what idling costs it. Tasks: one short query through the service's text
encoder (`vlclip-tiny`, trimmed and traced as the service runs it; random weights, which cost what
trained ones do), one query in the index's all-types shard (`--index`, the Edge shards of
`make run`; skipped where there are none), a numpy product over 1,449 x 256 floats, and a pure-Python
loop whose code and data fit in the innermost caches. Where only the tasks that read memory slow down
after a pause, the pause cost them their cached data (on a virtual machine, another tenant may run on
the core meanwhile), not the clock: the service's first request after ready, like any request after a
quiet spell, pays this, and no warm-up before ready can prevent it.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tasks(index: Path | None) -> dict:
    import numpy as np
    import torch

    from vlclip.encoder import Encoder, ModelParams, create

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, _, pre, tok = create(ModelParams("vlclip-tiny"))
    encoder = Encoder(model, pre, tok, trim_text=True, traced=True)
    rng = np.random.default_rng(0)
    table, query = rng.random((1449, 256), dtype=np.float32), rng.random(256, dtype=np.float32)

    def python_loop():
        total = 0
        for i in range(20_000):
            total += i
        return total

    out = {"encode one query": lambda: encoder.encode_text(["a red cotton dress"]),
           "numpy 1449x256 @ query, top 10": lambda: np.argsort(table @ query)[:10],
           "python loop of 20k additions": python_loop}
    if index is not None and (index / "manifest.json").exists():
        from serving.backends.edge_search import EdgeSearcher

        searcher = EdgeSearcher(index, 64, [None])
        if searcher.all_types:
            vector = encoder.encode_text(["a red cotton dress"])[0]
            if vector.shape[0] == searcher.dim:
                out["index search, all-types shard"] = lambda: searcher.search(vector, None, 10)
    return out


def measure(fn, pause_s: float, hot: int = 50, cold: int = 10) -> dict:
    for _ in range(20):
        fn()
    back_to_back = []
    for _ in range(hot):
        t0 = time.perf_counter()
        fn()
        back_to_back.append(time.perf_counter() - t0)
    after_pause = []
    for _ in range(cold):
        time.sleep(pause_s)
        t0 = time.perf_counter()
        fn()
        after_pause.append(time.perf_counter() - t0)
    hot_ms, cold_ms = 1000 * statistics.median(back_to_back), 1000 * statistics.median(after_pause)
    return {"back_to_back_p50_ms": round(hot_ms, 3), "after_pause_p50_ms": round(cold_ms, 3),
            "ratio": round(cold_ms / hot_ms, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pause", type=float, default=0.5, help="seconds of sleep before each timed run")
    ap.add_argument("--index", type=Path, default=ROOT / "data" / "index", help="Edge shards (none: skipped)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    figures = {}
    for name, fn in tasks(args.index).items():
        figures[name] = measure(fn, args.pause)
        f = figures[name]
        print(f"{name}: back to back p50 {f['back_to_back_p50_ms']} ms, after {args.pause} s of sleep "
              f"p50 {f['after_pause_p50_ms']} ms ({f['ratio']}x)", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"pause_s": args.pause, "tasks": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
