"""The report's pictures (matplotlib, written atomically as PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

from ser import registry  # noqa: E402
from ser.errors import SerError  # noqa: E402
from ser.intervals import Interval  # noqa: E402
from ser.io import atomic_path  # noqa: E402

LABEL = registry.labels()
COLORS = registry.colors()


def save(fig, path: Path) -> None:
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    except OSError as err:
        raise SerError(f"{path}: cannot write ({err.strerror or err})") from None
    finally:
        plt.close(fig)


def _errorbar(ax, y: float, i: Interval, scale: float = 100.0, **kw) -> None:
    ax.errorbar(i.value * scale, y, xerr=[[scale * (i.value - i.low)], [scale * (i.high - i.value)]],
                fmt="o", capsize=4, **kw)


def accuracy(pooled: dict[str, dict[str, Interval]], labels: dict[str, str], reference: float,
             conf: str, path: Path) -> None:
    """Pooled accuracy of every family under each protocol, with intervals."""
    rows = [(prot, m) for prot in pooled for m in pooled[prot]]
    fig, ax = plt.subplots(figsize=(8.5, 1.2 + 0.55 * len(rows)))
    for y, (prot, m) in enumerate(rows):
        _errorbar(ax, y, pooled[prot][m], color=COLORS[m])
    ax.axvline(reference, ls="--", color="grey", lw=1)
    ax.text(reference + 0.5, len(rows) - 0.6, f"reference CNN-LSTM test {reference:.0f}%",
            fontsize=8, color="grey")
    ax.set_yticks(range(len(rows)), [f"{LABEL[m]}, {labels[p]}" for p, m in rows])
    ax.set_ylim(-0.6, len(rows) - 0.3)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"pooled test accuracy (%), {conf} bootstrap interval")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Accuracy of every family on every clip, each tested once")
    save(fig, path)


def forest(pairs: dict[str, tuple[list[tuple[str, int, Interval]], Interval]], title: str,
           conf: str, path: Path) -> None:
    """One panel per compared pair: each fold's gap with its interval, the pooled gap beneath."""
    n = len(next(iter(pairs.values()))[0])
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 1.4 + 0.42 * (n + 1)),
                             sharey=True, squeeze=False)
    for ax, (name, (per_fold, pooled)) in zip(axes[0], pairs.items()):
        for y, (_, _, i) in enumerate(per_fold):
            _errorbar(ax, y, i, scale=1.0, color="black")
        y = len(per_fold) + 0.4
        ax.fill([pooled.low, pooled.value, pooled.high, pooled.value],
                [y, y - 0.25, y, y + 0.25], color="C3")
        ax.axvline(0, color="grey", lw=1)
        ax.axvline(pooled.value, color="C3", lw=1, ls=":")
        ax.set_yticks(list(range(len(per_fold))) + [y],
                      [f"{run} ({k} clips)" for run, k, _ in per_fold] + ["pooled"])
        ax.set_xlabel(f"accuracy gap (points), {conf} interval", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].invert_yaxis()
    fig.suptitle(title)
    save(fig, path)


def confusions(tables: dict[str, pd.DataFrame], classes: list[str], title: str, path: Path) -> None:
    """Row-normalised pooled confusion matrices, one panel per family (columns label, pred)."""
    fig, axes = plt.subplots(1, len(tables), figsize=(6.2 * len(tables), 5.6))
    for ax, (m, t) in zip(np.atleast_1d(axes), tables.items()):
        cm = confusion_matrix(t["label"], t["pred"], labels=classes)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{norm[i, j]:.2f}\n({cm[i, j]})", ha="center", va="center",
                        fontsize=8, color="white" if norm[i, j] > 0.55 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{LABEL[m]} ({len(t)} clips, acc {np.mean(t['label'] == t['pred']):.1%})")
    fig.suptitle(title)
    save(fig, path)


def per_class_f1(metrics: dict[str, dict[str, Interval]], classes: list[str], title: str,
                 conf: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.6))
    x = np.arange(len(classes))
    width = 0.8 / len(metrics)
    for k, (m, mm) in enumerate(metrics.items()):
        vals = [mm[f"f1.{c}"] for c in classes]
        v = np.array([i.value for i in vals])
        err = np.array([[i.value - i.low for i in vals], [i.high - i.value for i in vals]])
        ax.bar(x + (k - (len(metrics) - 1) / 2) * width, v, width, yerr=err, capsize=3,
               label=LABEL[m], color=COLORS[m])
    ax.set_xticks(x, classes)
    ax.set_ylim(0, 1.18)
    ax.set_ylabel("F1")
    ax.set_title(f"{title}, with {conf} bootstrap intervals")
    ax.legend(loc="upper center", ncol=len(metrics))
    ax.grid(axis="y", alpha=0.3)
    save(fig, path)


def curves(per_fold: dict[str, pd.DataFrame], best: dict[str, int], title: str, path: Path) -> None:
    """The CNN-LSTM's accuracy per epoch, one small panel per fold, best epoch marked."""
    n = len(per_fold)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), sharey=True, squeeze=False)
    for ax, (name, c) in zip(axes.flat, per_fold.items()):
        epochs = c.index + 1
        ax.plot(epochs, c["train_acc"], label="train", lw=1)
        ax.plot(epochs, c["val_acc"], label="validation", lw=1)
        if name in best:
            ax.axvline(best[name], ls="--", color="grey", lw=1)
        ax.set_title(f"{name} (best epoch {best.get(name, '?')})", fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.set_xlabel("epoch", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    save(fig, path)


def per_actor(acc: dict[str, pd.DataFrame], labels: dict[str, str], path: Path) -> None:
    """Accuracy per actor of every family, one panel per protocol (rows: actor; columns: families)."""
    fig, axes = plt.subplots(1, len(acc), figsize=(5.5 * len(acc), 4.2), sharey=True, squeeze=False)
    for ax, (prot, t) in zip(axes.flat, acc.items()):
        for m in t.columns:
            ax.plot(t.index, 100 * t[m], "o-", ms=4, lw=0.8, label=LABEL[m], color=COLORS[m])
        ax.set_xticks(t.index)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel("actor (odd: men, even: women)")
        ax.set_title(labels[prot], fontsize=10)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes.flat[0].set_ylabel("test accuracy (%)")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Accuracy per actor")
    save(fig, path)
