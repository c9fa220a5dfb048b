"""The report's PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLORS = [
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path.name


def funnel(data: dict, out: Path) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for i, (source, steps) in enumerate(sorted(data["funnel"].items())):
        names = [s for s, _ in steps]
        ax.plot(
            range(len(steps)), [n for _, n in steps], marker="o", color=COLORS[i % len(COLORS)], label=source
        )
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("rows remaining")
    ax.set_title("Rows through each stage, per source")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out / "funnel.png")


def rejects(data: dict, out: Path) -> str | None:
    by_source = data["rejects_by_reason"]
    reasons = sorted(
        {r for d in by_source.values() for r in d},
        key=lambda r: -sum(d.get(r, 0) for d in by_source.values()),
    )
    if not reasons:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(reasons) + 1.5))
    left = np.zeros(len(reasons))
    for i, (source, d) in enumerate(sorted(by_source.items())):
        vals = np.array([d.get(r, 0) for r in reasons])
        ax.barh(reasons, vals, left=left, color=COLORS[i % len(COLORS)], label=source)
        left += vals
    ax.invert_yaxis()
    ax.set_xlabel("rows removed")
    ax.set_title("Removed rows by reason and source")
    ax.legend(fontsize=8)
    return _save(fig, out / "rejects.png")


def _grouped_shares(ax, before: dict, after: dict, keys: list[str], title: str) -> None:
    x = np.arange(len(keys))
    ax.bar(x - 0.2, [before.get(k, 0) for k in keys], 0.4, label="before", color=COLORS[7])
    ax.bar(x + 0.2, [after.get(k, 0) for k in keys], 0.4, label="after", color=COLORS[0])
    ax.set_xticks(x, keys, rotation=30, ha="right")
    ax.set_ylabel("share of rows")
    ax.set_title(title)
    ax.legend(fontsize=8)


def task_types(data: dict, out: Path) -> str | None:
    before = data["diversity"]["before"]["all"].get("task_types", {})
    after = data["diversity"]["after"]["all"].get("task_types", {})
    keys = data["task_types"] or sorted(set(before) | set(after))
    if not before and not after:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    _grouped_shares(ax, before, after, list(keys), "Task types before and after curation")
    return _save(fig, out / "task_types.png")


def languages(data: dict, out: Path) -> str | None:
    before = data["diversity"]["before"]["all"].get("languages", {})
    after = data["diversity"]["after"]["all"].get("languages", {})
    if not before and not after:
        return None
    keys = sorted(set(before) | set(after), key=lambda k: -before.get(k, 0))[:12]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    _grouped_shares(ax, before, after, keys, "Languages before and after curation")
    return _save(fig, out / "languages.png")


def lengths(data: dict, train_tokens: dict[str, np.ndarray], out: Path) -> str | None:
    if not train_tokens:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(train_tokens), figsize=(9, 3.4))
    axes = np.atleast_1d(axes)
    for ax, (name, values) in zip(axes, train_tokens.items(), strict=True):
        values = values[values > 0]
        if len(values):
            bins = np.logspace(np.log10(max(1, values.min())), np.log10(values.max() + 1), 30)
            ax.hist(values, bins=bins, color=COLORS[0])
            ax.set_xscale("log")
        ax.set_title(f"{name} (training set)")
        ax.set_xlabel("tokens")
    axes[0].set_ylabel("rows")
    return _save(fig, out / "lengths.png")


def clusters(data: dict, out: Path) -> str | None:
    sizes = data["dup_cluster_sizes"]
    if not sizes:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ks = sorted(int(k) for k in sizes)
    ax.bar([str(k) for k in ks], [sizes[k] if k in sizes else sizes[str(k)] for k in ks], color=COLORS[3])
    ax.set_xlabel("cluster size (rows)")
    ax.set_ylabel("clusters")
    ax.set_title("Duplicate cluster sizes (exact and near)")
    return _save(fig, out / "clusters.png")


def mix(data: dict, out: Path) -> str | None:
    m = data.get("mix") or {}
    groups = m.get("groups") or {}
    if not groups:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    names = list(groups)
    x = np.arange(len(names))
    if m.get("targets_given"):
        ax.bar(x - 0.2, [groups[g]["target_share"] or 0 for g in names], 0.4, label="target", color=COLORS[7])
    ax.bar(
        x + (0.2 if m.get("targets_given") else 0),
        [groups[g]["realized_share"] for g in names],
        0.4,
        label="realized",
        color=COLORS[2],
    )
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel(f"share of training {m.get('unit', 'rows')}")
    ax.set_title(f"Mix by {m.get('by', 'source')}: target vs realized")
    ax.legend(fontsize=8)
    return _save(fig, out / "mix.png")
