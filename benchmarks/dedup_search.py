"""Near-duplicate search over perceptual hashes at catalog scale (dedup's grouping, without images).

    python benchmarks/dedup_search.py --n 1000000 --planted 0.01 --json reports/dedup_search.json

Draws n random 64-bit hashes of which a share are planted near-duplicates (a copy of another hash
with 0..max_distance bits flipped), groups them with `curation.hamming.groups`, and prints the
time, peak RSS and how many planted pairs ended in one group. On a subset it also checks that the
groups equal those of the exhaustive all-pairs search.
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from curation.hamming import groups
from vlclip.progress import write_report


def planted_hashes(n: int, share: float, max_distance: int, seed: int):
    """-> (bits (n, 64) bool, planted (k, 2) row pairs)."""
    rng = np.random.default_rng(seed)
    k = int(n * share)
    bits = rng.random((n, 64)) < 0.5
    copies = np.arange(n - k, n)
    sources = rng.integers(0, n - k, k)
    bits[copies] = bits[sources]
    flips = rng.integers(0, max_distance + 1, k)
    for row, f in zip(copies, flips):
        bits[row, rng.choice(64, f, replace=False)] ^= True
    return bits, np.stack([sources, copies], axis=1)


def exhaustive_groups(bits: np.ndarray, max_distance: int, chunk: int = 2048) -> np.ndarray:
    """All-pairs reference: same labels (smallest row of the group) by chunked matrix products."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    b = bits.astype(np.int16)
    rows, cols = [], []
    for start in range(0, len(b), chunk):
        block = b[start:start + chunk]
        i, j = np.nonzero(block @ (1 - b).T + (1 - block) @ b.T <= max_distance)
        rows.append(i + start)
        cols.append(j)
    n = len(b)
    graph = coo_matrix((np.ones(sum(map(len, rows)), np.int8), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    smallest = np.full(comp.max() + 1, n)
    np.minimum.at(smallest, comp, np.arange(n))
    return smallest[comp]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--planted", type=float, default=0.01)
    ap.add_argument("--max-distance", type=int, default=8)
    ap.add_argument("--check-n", type=int, default=20_000, help="rows checked against the exhaustive search")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    bits, planted = planted_hashes(args.n, args.planted, args.max_distance, args.seed)
    t0 = time.perf_counter()
    labels = groups(bits, args.max_distance)
    seconds = time.perf_counter() - t0
    found = int((labels[planted[:, 0]] == labels[planted[:, 1]]).sum())
    sub, _ = planted_hashes(args.check_n, args.planted, args.max_distance, args.seed + 1)
    same = bool(np.array_equal(groups(sub, args.max_distance), exhaustive_groups(sub, args.max_distance)))
    report = {"n": args.n, "max_distance": args.max_distance, "seconds": round(seconds, 2),
              "hashes_per_s": round(args.n / seconds), "planted_pairs": len(planted), "planted_found": found,
              "groups_of_two_or_more": int((np.bincount(labels) > 1).sum()),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "exhaustive_check_n": args.check_n, "same_groups_as_exhaustive": same}
    print(f"dedup search: {args.n:,} hashes in {seconds:.1f} s ({report['hashes_per_s']:,}/s), "
          f"planted pairs found {found}/{len(planted)}, peak RSS {report['peak_rss_mb']} MB; "
          f"same groups as the exhaustive search on {args.check_n:,}: {same}")
    if args.json:
        write_report(args.json, report)
    return 0 if found == len(planted) and same else 1


if __name__ == "__main__":
    raise SystemExit(main())
