"""Load benchmark of the retrieval service on loopback, bounded in count and time.

Starts `vlclip serve` on the built project, measures time to ready and the first request after it
(over --starts starts, the median), then lone requests each after 0.5 s of silence, then requests/s
and p50/p90/p99 for /search, /search/image and /products/{id}/similar at each concurrency level, and
/search at the lowest level once more after the highest (the p50 that p99 at the highest is set
against is the mean of both windows: the machine's speed drifts between them).
/search runs twice: `search` sends the catalog's own queries (queries.csv: what users type, a few
words), `titles` sends product titles, long and noisy queries (17.5 tokens on the demo against 5.2).
The load generator shares the machine, so it is lean: one keep-alive connection
per worker and requests prepared as raw HTTP/1.1 bytes (a general HTTP client spent as much CPU per
request as the service and made its own latency tail).

With --reload it then runs a mixed load at the highest level while a second model version is
published (the baseline variant's checkpoint is registered if needed, promoted with --force, and
embed, materialize and index re-run as single stages) and the service is told to reload; it counts
failed requests and the model version every response names, then restores the original champion
the same way.

    .venv/bin/python benchmarks/service_load.py --seconds 15 --levels 1,8,32 --starts 5 --reload \
        --json reports/service_load.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def start(root: Path, client: httpx.Client, port: int, timeout_s: float = 300) -> tuple[subprocess.Popen, float]:
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "vlclip.cli", "serve", "--port", str(port)], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=open(root / "reports" / "service_load.log", "w"))
    while time.monotonic() - t0 < timeout_s:
        try:
            if client.get("/readyz", timeout=5).status_code == 200:
                return proc, time.monotonic() - t0
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"service not ready; see {root / 'reports' / 'service_load.log'}")


def payloads(root: Path, n: int = 64) -> dict:
    """Requests of each kind: the catalog's own search queries (queries.csv, user-style; the titles
    where it has none), product titles as long queries, images and product ids."""
    from vlclip.params import load_params

    table = pd.read_parquet(root / "data" / "embeddings" / "products.parquet",
                            columns=["product_id", "title", "image_path"]).head(n)
    images = [Path(p if Path(p).is_absolute() else root / p).read_bytes() for p in table["image_path"][:16]]
    queries = root / load_params(root / "params.yaml")["catalog"]["path"] / "queries.csv"
    titles = table["title"].tolist()
    user = pd.read_csv(queries)["query"].astype(str).head(n).tolist() if queries.exists() else titles
    return {"queries": user, "titles": titles, "images": images, "ids": table["product_id"].tolist()}


def _http(method: str, path: str, body: bytes = b"", content_type: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nhost: bench\r\ncontent-length: {len(body)}\r\n"
    return (head + (f"content-type: {content_type}\r\n" if content_type else "") + "\r\n").encode() + body


def prepared(data: dict) -> dict[str, list[bytes]]:
    """Every request of each route as raw HTTP/1.1 bytes, built before the clock starts: the load
    generator shares the machine, so per request it only writes bytes and reads a response."""
    boundary = "vlclipbench"
    uploads = [(f"--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"q.jpg\"\r\n"
                f"content-type: image/jpeg\r\n\r\n").encode() + im + f"\r\n--{boundary}--\r\n".encode()
               for im in data["images"]]
    def search(texts):
        return [_http("POST", "/search", json.dumps({"query": q, "k": 10}).encode(), "application/json") for q in texts]

    return {"search": search(data["queries"]), "titles": search(data["titles"]),
            "image": [_http("POST", "/search/image", u, f"multipart/form-data; boundary={boundary}") for u in uploads],
            "similar": [_http("GET", f"/products/{quote(str(i), safe='')}/similar?k=10") for i in data["ids"]]}


async def exchange(reader, writer, raw: bytes) -> tuple[int, bytes]:
    """One request on a keep-alive connection -> (status, body)."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(x.split(b":")[1]) for x in lines if x.lower().startswith(b"content-length:"))
    return int(lines[0].split()[1]), await reader.readexactly(length)


VERSION = re.compile(rb'"model_version":\s*"([^"]*)"')


async def hammer(url: str, routes: list[str], concurrency: int, seconds: float, max_requests: int, data: dict,
                 warmup_s: float = 2.0) -> dict:
    """`concurrency` workers, one keep-alive connection each, send requests back to back (cycling
    `routes`) until time or count runs out. Latencies count from `warmup_s` on (the first wave opens the
    connections); errors always count, and a worker whose connection fails opens a new one."""
    host, port = url.removeprefix("http://").split(":")
    raw = prepared(data)
    lat: dict[str, list[float]] = {r: [] for r in routes}
    errors, versions, unnamed, count = [], {}, 0, 0
    start = time.monotonic()
    deadline, measured_from = start + warmup_s + seconds, start + warmup_s

    async def worker(w: int):
        nonlocal count, unnamed
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.monotonic() < deadline and count < max_requests:
            i, route = count, routes[count % len(routes)]
            count += 1
            t0, counted = time.perf_counter(), time.monotonic() >= measured_from
            try:
                status, body = await exchange(reader, writer, raw[route][(i * 7 + w) % len(raw[route])])
            except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration) as exc:
                errors.append(f"{route}: {type(exc).__name__}")
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
                continue
            if counted:
                lat[route].append(time.perf_counter() - t0)
            if status != 200:
                errors.append(f"{route}: {status}")
                continue
            found = VERSION.search(body)
            unnamed += found is None
            version = found.group(1).decode() if found else "None"
            versions[version] = versions.get(version, 0) + 1
        writer.close()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    wall = time.monotonic() - measured_from
    per_route = {r: {"requests": len(v), "rps": round(len(v) / wall, 1),
                     "p50_ms": round(1000 * float(np.percentile(v, 50)), 1) if v else None,
                     "p90_ms": round(1000 * float(np.percentile(v, 90)), 1) if v else None,
                     "p99_ms": round(1000 * float(np.percentile(v, 99)), 1) if v else None} for r, v in lat.items()}
    return {"concurrency": concurrency, "seconds": round(wall, 1), "sent": count, "errors": len(errors),
            "error_kinds": sorted(set(errors))[:10], "versions": versions, "unnamed": unnamed, "routes": per_route}


async def first_request(url: str, raw: bytes) -> tuple[float, bytes]:
    """The first /search after ready, sent as the load's requests are (raw bytes on a keep-alive
    connection), so it compares with their p50: -> (seconds, body)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    t0 = time.perf_counter()
    status, body = await exchange(reader, writer, raw)
    seconds = time.perf_counter() - t0
    writer.close()
    if status != 200:
        raise RuntimeError(f"first /search after ready answered {status}: {body[:200]!r}")
    return seconds, body


async def idle_requests(url: str, raws: list[bytes], pause_s: float = 0.5) -> list[float]:
    """Lone /search requests, each after `pause_s` of silence: what a request costs on a quiet
    service, to set beside the first one after ready (which also comes after a pause). -> seconds."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    out = []
    for raw in raws:
        await asyncio.sleep(pause_s)
        t0 = time.perf_counter()
        await exchange(reader, writer, raw)
        out.append(time.perf_counter() - t0)
    writer.close()
    return out


def scrape(url: str) -> dict:
    """The service's batch series from /metrics: (name, labels) -> value."""
    from serving.observe import samples

    return {k: v for k, v in samples(httpx.get(f"{url}/metrics", timeout=30).text).items()
            if k[0].startswith("vlclip_batch")}


def batches(before: dict, after: dict) -> dict:
    """Per batcher over one run: batches, mean batch size and mean ms of each step per batch."""
    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    out = {}
    for batcher in ("text", "image", "similar"):
        n = delta("vlclip_batch_size_count", batcher=batcher)
        if not n:
            continue
        out[batcher] = {"batches": int(n), "mean_size": round(delta("vlclip_batch_size_sum", batcher=batcher) / n, 1)}
        for step in ("encode", "read", "search"):
            if delta("vlclip_batch_step_seconds_count", batcher=batcher, step=step):
                seconds = delta("vlclip_batch_step_seconds_sum", batcher=batcher, step=step)
                out[batcher][f"{step}_ms"] = round(1000 * seconds / n, 1)
    return out


def cpu_now(pid: int) -> dict | None:
    """CPU seconds so far of the service (`pid` and its child processes: the search and encoder
    children), of this load generator, and of the whole machine (busy and all), read from /proc;
    None where there is no /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        procs: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, utime + stime in seconds)
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            procs[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
        machine = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return None
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += [p for p, (parent, _) in procs.items() if parent == tree[-1]]
    mine = os.times()
    return {"service": sum(procs[p][1] for p in tree if p in procs), "load": mine.user + mine.system,
            "busy": (sum(machine) - machine[3] - machine[4]) / ticks, "all": sum(machine) / ticks}


def cpu_used(before: dict | None, after: dict | None, requests: int, cores: int) -> dict | None:
    """ms of CPU per request of the service and of the load generator, and how busy the machine was."""
    if before is None or after is None or not requests:
        return None
    d = {k: after[k] - before[k] for k in after}
    return {"service_ms_per_request": round(1000 * d["service"] / requests, 3),
            "load_ms_per_request": round(1000 * d["load"] / requests, 3),
            "machine_busy": round(d["busy"] / d["all"], 3) if d["all"] else None, "cores": cores}


def cold_start(root: Path, probe: httpx.Client, port: int, data: dict) -> tuple[subprocess.Popen, dict]:
    """Start the service and time its first /search once /readyz says ready -> (process, figures)."""
    proc, ready_s = start(root, probe, port)
    try:
        seconds, body = asyncio.run(first_request(f"http://127.0.0.1:{port}", prepared(data)["search"][0]))
    except BaseException:
        proc.kill()
        raise
    figures = {"ready_s": round(ready_s, 1), "first_request_ms": round(1000 * seconds, 1),
               "version": VERSION.search(body).group(1).decode()}
    print(f"ready in {figures['ready_s']}s; first /search after ready {figures['first_request_ms']} ms "
          f"(version {figures['version']})", flush=True)
    return proc, figures


def stopped(proc: subprocess.Popen, figures: dict) -> dict:
    proc.terminate()
    proc.wait(30)
    return figures


def stage(root: Path, *args: str) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(["dvc", "repro", *args], cwd=root, env=env, check=True, capture_output=True, text=True)


def publish(root: Path, version: str) -> None:
    """Make `version` champion by hand and publish its embeddings, online features and index."""
    subprocess.run([sys.executable, "-m", "vlclip.cli", "promote", "--version", version, "--force"], cwd=root,
                   check=True, capture_output=True, text=True)
    stage(root, "-sf", "embed")
    stage(root, "-s", "materialize")
    stage(root, "-s", "index")


def other_version(root: Path, champion: str) -> str:
    """A registered version other than the champion: the baseline variant's checkpoint if none exists."""
    from mlflow.tracking import MlflowClient

    from registry.register import register
    from vlclip.params import load_params, section
    from vlclip.tracking import MlflowParams, setup, tracking_uri

    os.chdir(root)
    params = load_params(root / "params.yaml")
    mp = section(MlflowParams, params, "mlflow")
    setup(mp)
    client = MlflowClient(tracking_uri=tracking_uri(mp, root))
    versions = [v.version for v in client.search_model_versions(f"name = '{mp.model_name}'")]
    others = sorted((v for v in versions if str(v) != champion), key=int)
    if others:
        return str(others[-1])
    metrics = json.loads((root / "metrics" / "retrieval.json").read_text())["baseline"]
    return str(register(root / "models" / "baseline", metrics, mp, params["catalog"]["path"])["version"])


def reload_phase(root: Path, url: str, level: int, data: dict, champion: str) -> dict:
    """Mixed load at `level` while another version is published and swapped in."""
    target = other_version(root, champion)
    timeline: dict = {}

    def republish():
        t0 = time.monotonic()
        publish(root, target)
        timeline["published_s"] = round(time.monotonic() - t0, 1)
        timeline["reload"] = httpx.post(f"{url}/admin/reload", timeout=300).json()
        timeline["swapped_s"] = round(time.monotonic() - t0, 1)

    thread = threading.Thread(target=republish)
    thread.start()
    result = asyncio.run(_until(thread, url, level, data))
    thread.join()
    return {**result, "target_version": target, **timeline}


async def _until(thread: threading.Thread, url: str, level: int, data: dict) -> dict:
    """Load until the republish thread is done, then 10 s more on the new version."""
    parts = []
    while thread.is_alive():
        parts.append(await hammer(url, ["search", "image", "similar"], level, 5, 10**7, data))
    parts.append(await hammer(url, ["search", "image", "similar"], level, 10, 10**7, data))
    versions: dict = {}
    for p in parts:
        for v, n in p["versions"].items():
            versions[v] = versions.get(v, 0) + n
    answered = sum(n for p in parts for n in p["versions"].values())
    return {"concurrency": level, "requests": answered + sum(p["errors"] for p in parts),
            "errors": sum(p["errors"] for p in parts),
            "error_kinds": sorted({e for p in parts for e in p["error_kinds"]}),
            "unnamed": sum(p["unnamed"] for p in parts), "versions": versions,
            "last_versions": parts[-1]["versions"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(ROOT), help="a project on which `make run` has finished")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--levels", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=20.0, help="per level and route")
    ap.add_argument("--max-requests", type=int, default=20000, help="per level and route")
    ap.add_argument("--reload", action="store_true", help="also publish and swap in another version under load")
    ap.add_argument("--starts", type=int, default=1, help="service starts whose first request is timed")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    root, url = Path(args.root).resolve(), f"http://127.0.0.1:{args.port}"
    (root / "reports").mkdir(exist_ok=True)
    data = payloads(root)
    probe = httpx.Client(base_url=url, timeout=60)  # a client that waits on /readyz, as a load balancer does
    firsts = [stopped(*cold_start(root, probe, args.port, data)) for _ in range(args.starts - 1)]
    proc, first = cold_start(root, probe, args.port, data)
    out: dict = {"ready_s": first["ready_s"], "starts": [*firsts, first], "levels": []}
    out["first_request_ms"] = round(float(np.median([f["first_request_ms"] for f in out["starts"]])), 1)
    try:
        champion = first["version"]
        lone = asyncio.run(idle_requests(url, prepared(data)["search"][1:21]))
        out["lone_after_idle_p50_ms"] = round(1000 * float(np.median(lone)), 1)
        print(f"first /search after ready, median of {args.starts} start(s): {out['first_request_ms']} ms; lone "
              f"/search after 0.5 s of silence (20 requests): p50 {out['lone_after_idle_p50_ms']} ms")
        print(f"{'conc':>4} {'route':<8} {'req':>6} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}   "
              "batches (incl. warm-up requests' 2 s)")
        for level in (int(x) for x in args.levels.split(",")):
            for route in ("search", "titles", "image", "similar"):
                seen, cpu = scrape(url), cpu_now(proc.pid)
                r = asyncio.run(hammer(url, [route], level, args.seconds, args.max_requests, data))
                cpu = cpu_used(cpu, cpu_now(proc.pid), r["sent"], os.cpu_count() or 1)
                out["levels"].append({**r, "route": route, "batches": batches(seen, scrape(url)), "cpu": cpu})
                s = r["routes"][route]
                per_batch = "; ".join(f"{b}: {v['mean_size']} per batch, " + ", ".join(
                    f"{k[:-3]} {x} ms" for k, x in v.items() if k.endswith("_ms"))
                    for b, v in out["levels"][-1]["batches"].items())
                used = "" if cpu is None else (f"; CPU per request: service {cpu['service_ms_per_request']} ms, "
                                               f"load {cpu['load_ms_per_request']} ms; "
                                               f"machine {cpu['machine_busy']:.0%} busy")
                print(f"{level:>4} {route:<8} {s['requests']:>6} {s['rps']:>7} {s['p50_ms']:>8} {s['p99_ms']:>8} "
                      f"{r['errors']:>6}   {per_batch}{used}", flush=True)
        search, titles = ({lv["concurrency"]: lv["routes"][r] for lv in out["levels"] if lv["route"] == r}
                          for r in ("search", "titles"))
        low, high = min(search), max(search)
        # the lowest level again, after the highest: the machine's speed drifts between them, and the
        # ratio's p50 is the mean of both windows' so the drift weighs on both of its terms alike
        out["after"] = {r: asyncio.run(hammer(url, [r], low, args.seconds, args.max_requests, data))["routes"][r]
                        for r in ("search", "titles")}
        for name, by_level in (("search", search), ("titles", titles)):
            p50s = [by_level[low]["p50_ms"], out["after"][name]["p50_ms"]]
            out[f"{name}_p50_at_{low}_ms"] = p50s
            out[f"{name}_p99_at_max_over_p50_at_1"] = round(by_level[high]["p99_ms"] / float(np.mean(p50s)), 2)
        out["first_request_over_warm_p50"] = round(out["first_request_ms"] / search[low]["p50_ms"], 2)
        out["first_request_over_lone_p50"] = round(out["first_request_ms"] / out["lone_after_idle_p50_ms"], 2)
        print(f"p50 at {low} again after {high}: {out['after']['search']['p50_ms']} ms (catalog queries), "
              f"{out['after']['titles']['p50_ms']} ms (titles)")
        print(f"/search p99 at {high} / p50 at {low} (mean of both windows): "
              f"{out['search_p99_at_max_over_p50_at_1']}x (catalog queries), "
              f"{out['titles_p99_at_max_over_p50_at_1']}x (titles); first request (median) / warm p50: "
              f"{out['first_request_over_warm_p50']}x at {low} back to back, "
              f"{out['first_request_over_lone_p50']}x of lone requests after 0.5 s of silence")
        if args.reload:
            r = reload_phase(root, url, high, data, champion)
            out["reload"] = r
            print(f"reload under load (concurrency {high}): {r['requests']} requests, {r['errors']} failed, "
                  f"{r['unnamed']} without a model version; versions answered {r['versions']}; "
                  f"after the swap {r['last_versions']}; {r.get('reload')}")
            publish(root, champion)  # restore
            print(f"restored champion version {champion}")
    finally:
        proc.terminate()
        proc.wait(30)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
