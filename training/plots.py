"""Pictures people look at: training curves and HITS@k bars (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curve(history: pd.DataFrame, title: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    ax.plot(history["epoch"], history["train_loss"], marker="o", label="train")
    ax.plot(history["epoch"], history["val_loss"], marker="o", label="validation")
    ax.set(xlabel="epoch", ylabel="InfoNCE loss", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_hits(metrics: dict, ks: list[int], path: Path) -> Path:
    """Grouped bars: one group per k, one bar per variant, 95% bootstrap intervals as error bars."""
    plt = _plt()
    variants = list(metrics)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    width = 0.8 / len(variants)
    for i, v in enumerate(variants):
        xs = [j + i * width for j in range(len(ks))]
        ys = [metrics[v][f"hits@{k}"] for k in ks]
        ci = metrics[v].get("ci95", {})
        err = [[y - ci.get(f"hits@{k}", [y, y])[0] for y, k in zip(ys, ks)],
               [ci.get(f"hits@{k}", [y, y])[1] - y for y, k in zip(ys, ks)]]
        ax.bar(xs, ys, width, label=v, yerr=err, capsize=2, error_kw={"elinewidth": 0.8})
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(ks))], [f"HITS@{k}" for k in ks])
    n = metrics[variants[0]].get("n_queries", "?")
    ax.set(ylim=(0, 1), ylabel="share of queries",
           title=f"text -> image retrieval, test products ({n} queries, 95% CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_examples(tops: dict[str, dict], path: Path, n_queries: int = 4, tile: int = 96) -> Path:
    """Top-5 images per query, one row per (query, variant); a green frame marks a relevant product.
    tops: variant -> {query: [(image_path, relevant), ...]}; the first n_queries queries are shown."""
    from PIL import Image, ImageDraw

    variants = list(tops)
    queries = list(tops[variants[0]])[:n_queries]
    label = 260
    sheet = Image.new("RGB", (label + 5 * tile, len(queries) * len(variants) * tile), "white")
    draw = ImageDraw.Draw(sheet)
    for qi, q in enumerate(queries):
        for vi, v in enumerate(variants):
            y = (qi * len(variants) + vi) * tile
            draw.text((4, y + 4), q[:40], fill="black")
            draw.text((4, y + 20), v, fill="gray")
            for k, (image_path, relevant) in enumerate(tops[v][q]):
                with Image.open(image_path) as im:
                    sheet.paste(im.convert("RGB").resize((tile - 6, tile - 6)), (label + k * tile + 3, y + 3))
                if relevant:
                    draw.rectangle((label + k * tile, y, label + (k + 1) * tile - 1, y + tile - 1),
                                   outline="lime", width=3)
    sheet.save(path)
    return path
