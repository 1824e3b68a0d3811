"""Near-duplicate search over binary hashes without comparing every pair (multi-index hashing).

Split the b hash bits into m blocks. If two hashes differ in at most t bits in all, then for block
thresholds t_1..t_m with sum t - m + 1, some block differs in at most t_i bits (otherwise the
blocks alone would differ in t + 1 or more). So every pair within t is found by looking up, for
each block, each hash's block value with every flip of at most t_i bits, in a table of the block
values; the candidates are then checked on the whole hash. Blocks of up to 22 bits are looked up
in a direct table (2^22 int32 offsets, 16 MB); wider blocks by binary search.

For 64-bit pHashes at t = 8: three blocks of 22/21/21 bits, 2 flips each, 718 lookups per hash.
Identical hashes are collapsed first, so a placeholder image shared by 10^5 products costs one row.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

MAX_TABLE_BITS = 22


def pack(bits: np.ndarray) -> np.ndarray:
    """(n, b) bool -> (n, ceil(b/64)) uint64, bit k of a row in word k // 64."""
    n, b = bits.shape
    padded = np.zeros((n, -(-b // 64) * 64), dtype=bool)
    padded[:, :b] = bits
    return np.packbits(padded.reshape(n, -1, 64), axis=2, bitorder="little").view(np.uint64)[:, :, 0]


def hamming(words: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Hamming distances between rows i and j of packed hashes."""
    return np.bitwise_count(words[i] ^ words[j]).sum(axis=1, dtype=np.int64)


def plan(b: int, t: int) -> tuple[list[slice], list[int]]:
    """-> (bit ranges of the blocks, flip budget per block) with sum(budgets) = t - m + 1 >= 0."""
    m = min(max(1, -(-b // MAX_TABLE_BITS)), t + 1)
    edges = np.linspace(0, b, m + 1).round().astype(int)
    spare = t - m + 1
    budgets = [spare // m + (1 if k < spare % m else 0) for k in range(m)]
    return [slice(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])], budgets


def block_values(bits: np.ndarray, block: slice) -> np.ndarray:
    cols = bits[:, block].astype(np.int64)
    return cols @ (np.int64(1) << np.arange(cols.shape[1], dtype=np.int64))


def flips(width: int, budget: int):
    """Every mask of `width` bits with at most `budget` bits set, the empty mask first."""
    for r in range(budget + 1):
        for pos in combinations(range(width), r):
            yield sum(1 << p for p in pos)


def _candidates(keys: np.ndarray, width: int, budget: int):
    """Yield (i, j) arrays, i < j, of rows whose block values differ in at most `budget` bits."""
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    direct = width <= MAX_TABLE_BITS
    if direct:
        starts = np.searchsorted(ranked, np.arange((1 << width) + 1)).astype(np.int64)
    rows = np.arange(len(keys))
    for mask in flips(width, budget):
        probe = keys ^ mask
        if direct:
            lo, hi = starts[probe], starts[probe + 1]
        else:
            lo, hi = np.searchsorted(ranked, probe, "left"), np.searchsorted(ranked, probe, "right")
        count = hi - lo
        total = int(count.sum())
        if not total:
            continue
        offsets = np.repeat(lo - (np.cumsum(count) - count), count)
        i = np.repeat(rows, count)
        j = order[np.arange(total) + offsets]
        keep = i < j
        yield i[keep], j[keep]


def near_pairs(bits: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, b) bool -> (i, j), i < j: every pair of rows within `max_distance` bits, each once."""
    words = pack(bits)
    blocks, budgets = plan(bits.shape[1], max_distance)
    found_i, found_j = [], []
    for block, budget in zip(blocks, budgets):
        keys = block_values(bits, block)
        for i, j in _candidates(keys, block.stop - block.start, budget):
            close = hamming(words, i, j) <= max_distance
            found_i.append(i[close])
            found_j.append(j[close])
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = np.unique(np.stack([np.concatenate(found_i), np.concatenate(found_j)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def groups(bits: np.ndarray, max_distance: int) -> np.ndarray:
    """(n, b) bool -> group label per row: the smallest row index of its group, where rows within
    `max_distance` bits are joined transitively."""
    n = len(bits)
    if n == 0:
        return np.zeros(0, np.int64)
    unique, first, inverse = np.unique(pack(bits), axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    ubits = bits[first]
    i, j = near_pairs(ubits, max_distance)
    u = len(unique)
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(u, u))
    _, comp = connected_components(graph, directed=False)
    comp = comp[inverse]                      # component per original row
    smallest = np.full(comp.max() + 1, n, np.int64)
    np.minimum.at(smallest, comp, np.arange(n))
    return smallest[comp]
