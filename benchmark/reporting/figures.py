"""The report's figures (matplotlib Agg, PNG): accuracy vs cost, throughput vs size, per-fold spread, curves.

Rendering is deterministic: figures are built without pyplot's global state under a fixed
style, and saved at a fixed dpi without a software/date stamp, so the same results give the
same bytes with the same matplotlib (its version is written into the PNG's `Source` text).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter

from ..io import atomic_write
from .load import Results
from .paper import paper_accuracy, paper_efficiency
from .tables import datasets_in, fold_values, mean_std

DPI = 110
STYLE = {
    "font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9,
    "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 8, "legend.framealpha": 0.9,
}
PAPER_COLOR = "#9e9e9e"
MINISEG_COLOR = "#d62728"
PAPER_TICK_COLOR = "#222222"
OURS_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#e377c2", "#7f7f7f")
OURS_MARKERS = ("D", "s", "^", "v", "P", "X", "h", "<")


@dataclass
class FigureSpec:
    """A figure to write as figures/<name>.png, with the caption the HTML page shows."""

    name: str
    title: str
    caption: str
    figure: Figure


def png_source_tag() -> str:
    """The PNG `Source` text: which renderer drew it (pixels may differ across matplotlib versions)."""
    return f"miniseg-bench report, matplotlib {matplotlib.__version__}"


def save_png(figure: Figure, path: Path) -> Path:
    """Write the figure atomically as a PNG with stable bytes (no timestamp, no software stamp)."""
    FigureCanvasAgg(figure)
    metadata = {"Software": None, "Source": png_source_tag()}
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI, metadata=metadata))


def new_figure(n_panels: int, max_cols: int, panel_in: tuple[float, float]) -> tuple[Figure, list]:
    """A figure with n panels on a grid of at most `max_cols` columns (unused cells removed)."""
    ncols = max(1, min(n_panels, max_cols))
    nrows = math.ceil(n_panels / ncols)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(panel_in[0] * ncols, panel_in[1] * nrows + 0.6), layout="constrained")
        axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    return fig, axes


def marker_area(params: int | None) -> float:
    """Scatter marker area (pt²) growing with the square root of the parameter count."""
    return 14.0 + 320.0 * math.sqrt(max(params or 0, 0) / 1e8)


def is_miniseg(paper_name: str | None) -> bool:
    return paper_name == "MiniSeg"


def _ours_color(index: int, paper_name: str | None) -> str:
    return MINISEG_COLOR if is_miniseg(paper_name) else OURS_COLORS[index % len(OURS_COLORS)]


def _paper_scatter(ax, xs_ys_params: list[tuple[str, float, float, int]]) -> None:
    """The paper's methods as grey bubbles, MiniSeg as a red star."""
    others = [(x, y, p) for m, x, y, p in xs_ys_params if not is_miniseg(m)]
    if others:
        ax.scatter([o[0] for o in others], [o[1] for o in others], s=[marker_area(o[2]) for o in others],
                   c=PAPER_COLOR, alpha=0.55, edgecolors="#555555", linewidths=0.5, zorder=2)
    for m, x, y, p in xs_ys_params:
        if is_miniseg(m):
            ax.scatter([x], [y], s=max(marker_area(p), 90), marker="*", c=MINISEG_COLOR, edgecolors="black",
                       linewidths=0.6, zorder=4)
            ax.annotate("MiniSeg (paper)", (x, y), xytext=(6, 4), textcoords="offset points", fontsize=8,
                        color=MINISEG_COLOR)


def _legend_handles(extra: list[Line2D]) -> list[Line2D]:
    return [
        Line2D([], [], ls="", marker="o", color=PAPER_COLOR, markeredgecolor="#555555", label="paper's methods"),
        Line2D([], [], ls="", marker="*", color=MINISEG_COLOR, markeredgecolor="black", markersize=11,
               label="MiniSeg, paper"),
    ] + extra


def dsc_vs_gmacs(results: Results) -> FigureSpec:
    """DSC against GMACs per dataset: the paper's rows and ours (log x, marker area ~ params)."""
    paper_cost = {r.method: r for r in paper_efficiency()}
    panels = []
    for dataset in datasets_in(results):
        paper_pts = [(m, paper_cost[m].gmacs, v["dsc"], paper_cost[m].params)
                     for m, v in paper_accuracy().get(dataset, {}).items() if m in paper_cost and "dsc" in v]
        ours = []
        for entry in (e for e in results.entries if e.dataset == dataset):
            prof = results.profile_for(entry)
            mean, std = mean_std(fold_values(entry, "paper", "dsc"))
            if prof is not None and prof.gmacs is not None and mean is not None:
                ours.append((entry, prof, mean, std))
        if paper_pts or ours:
            panels.append((dataset, paper_pts, ours))
    fig, axes = new_figure(len(panels), 2, (5.4, 4.0))
    with matplotlib.rc_context(STYLE):
        for ax, (dataset, paper_pts, ours) in zip(axes, panels):
            _paper_scatter(ax, paper_pts)
            labelled: dict[tuple[float, float], int] = {}  # labels at one point are stacked, not overprinted
            for i, (entry, prof, mean, std) in enumerate(ours):
                spot = (round(math.log10(prof.gmacs), 1), round(mean))
                labelled[spot] = labelled.get(spot, -1) + 1
                color = _ours_color(i, entry.paper_name)
                ax.errorbar([prof.gmacs], [mean], yerr=[std or 0.0], fmt="none", ecolor=color, elinewidth=1, zorder=3)
                ax.scatter([prof.gmacs], [mean], s=max(marker_area(prof.params), 40), marker="D", c=color,
                           edgecolors="black", linewidths=0.8, zorder=5)
                side = f" @{prof.input_side}²" if prof.input_side and prof.input_side != 512 else ""
                ax.annotate(f"{entry.label}{side}", (prof.gmacs, mean), xytext=(6, -10 - 9 * labelled[spot]),
                            textcoords="offset points", fontsize=7.5, color=color)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            xs = [p[1] for p in paper_pts] + [o[1].gmacs for o in ours]
            ax.set_xlim(min(xs) / 2, max(xs) * 2)
            ax.set_title(dataset)
            ax.set_xlabel("GMACs per image, 512×512 (log scale)")
            ax.set_ylabel("DSC (%), mean over folds")
        ours_handles = [
            Line2D([], [], ls="", marker="D", color=OURS_COLORS[0], markeredgecolor="black", label="ours (± std)"),
            Line2D([], [], ls="", marker="D", color=MINISEG_COLOR, markeredgecolor="black", label="MiniSeg, ours"),
        ]
        fig.legend(handles=_legend_handles(ours_handles), loc="outside lower center", ncols=4)
        fig.suptitle("Accuracy vs cost: DSC against GMACs (marker area grows with #params)")
    caption = ("Paper: Table 5 DSC against Table 4 GFLOPs (= GMACs at 512×512). Ours: mean DSC over folds "
               "(paper policy, error bar = std) against the GMACs we counted (evaluated maps: those of a "
               "profiled model of the same paper row).")
    return FigureSpec("dsc_vs_gmacs", "DSC vs GMACs", caption, fig)


def fastest_per_decade(points: list[tuple[float, float]]) -> set[int]:
    """Indices of the (size, speed) points with the highest speed within each decade of size (1e4-1e5, ...)."""
    best: dict[int, int] = {}
    for i, (size, speed) in enumerate(points):
        decade = math.floor(math.log10(size))
        if decade not in best or speed > points[best[decade]][1]:
            best[decade] = i
    return set(best.values())


def throughput_vs_params(results: Results) -> FigureSpec:
    """Images/s against parameters: the paper's FPS (TITAN RTX, batch 30) and ours per device."""
    fig, axes = new_figure(1, 1, (7.5, 5.0))
    ax = axes[0]
    with matplotlib.rc_context(STYLE):
        _paper_scatter(ax, [(r.method, r.params / 1e6, r.fps, r.params) for r in paper_efficiency()])
        handles = []
        for i, device in enumerate(results.devices):
            points = [p for p in results.profiles if p.device == device and p.params and p.throughput_img_s]
            color, marker = OURS_COLORS[i % len(OURS_COLORS)], OURS_MARKERS[i % len(OURS_MARKERS)]
            labelled = fastest_per_decade([(p.params, p.throughput_img_s) for p in points])
            for k, p in enumerate(points):
                edge = MINISEG_COLOR if is_miniseg(p.paper_name) else "black"
                ax.scatter([p.params / 1e6], [p.throughput_img_s], s=60, marker=marker, c=color, edgecolors=edge,
                           linewidths=1.6 if is_miniseg(p.paper_name) else 0.8, zorder=5)
                if k in labelled or p.model == "miniseg":
                    ax.annotate(f"{p.model} (bs{p.batch_size})", (p.params / 1e6, p.throughput_img_s),
                                xytext=(6, -10), textcoords="offset points", fontsize=7.5, color=color, zorder=6,
                                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
            handles.append(Line2D([], [], ls="", marker=marker, color=color, markeredgecolor="black",
                                  label=f"ours: {device}"))
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("Parameters (millions, log scale)")
        ax.set_ylabel("Throughput (images/s, log scale)")
        ax.set_title("Throughput vs size (paper: FPS on a TITAN RTX at batch 30)")
        ax.legend(handles=_legend_handles(handles), loc="lower left")
    caption = ("Paper: Table 4 FPS (TITAN RTX, batch 30, 512×512). Ours: eager fp32 images/s per profiled device "
               "at the batch size shown; MiniSeg outlined in red. Named: MiniSeg and, per device, the fastest model "
               "in each decade of parameters (10K-100K, 100K-1M, ...); the efficiency table lists every model.")
    return FigureSpec("throughput_vs_params", "Throughput vs params", caption, fig)


def folds_box(results: Results) -> FigureSpec | None:
    """Per-fold DSC spread of our rows, one panel per dataset, the paper's value as a red tick."""
    panels = []
    for dataset in datasets_in(results):
        rows = [(e, fold_values(e, "paper", "dsc")) for e in results.entries if e.dataset == dataset]
        rows = [(e, v) for e, v in rows if v]
        if rows:
            panels.append((dataset, rows))
    if not panels:
        return None
    fig, axes = new_figure(len(panels), 2, (5.4, 4.2))
    with matplotlib.rc_context(STYLE):
        for ax, (dataset, rows) in zip(axes, panels):
            positions = list(range(1, len(rows) + 1))
            ax.boxplot([v for _, v in rows], positions=positions, widths=0.5, showfliers=False,
                       medianprops={"color": "black"})
            for pos, (entry, values) in zip(positions, rows):
                n = len(values)
                offsets = [0.0] if n == 1 else [0.3 * i / (n - 1) - 0.15 for i in range(n)]
                ax.scatter([pos + o for o in offsets], values, s=16, c=_ours_color(0, entry.paper_name), zorder=3)
                ref = paper_accuracy().get(dataset, {}).get(entry.paper_name or "", {}).get("dsc")
                if ref is not None:
                    ax.scatter([pos], [ref], marker="_", s=500, c=PAPER_TICK_COLOR, linewidths=2.5, zorder=4)
            ax.set_xticks(positions, [e.label for e, _ in rows], rotation=25, ha="right")
            ax.set_title(dataset)
            ax.set_ylabel("DSC (%) per test fold")
        axes[0].legend(handles=[
            Line2D([], [], ls="", marker="o", color=OURS_COLORS[0], label="one fold"),
            Line2D([], [], ls="", marker="_", color=PAPER_TICK_COLOR, markersize=14, markeredgewidth=2.5,
                   label="paper's value"),
        ], loc="lower right")
        fig.suptitle("Per-fold DSC (paper policy)")
    caption = ("Box: our DSC over the test folds (paper policy); dots: folds (MiniSeg red); "
               "black tick: the paper's mean for that row.")
    return FigureSpec("folds_dsc", "Per-fold DSC", caption, fig)


def _curve(histories: dict[int, list[dict]], key: str) -> tuple[list[list[tuple[int, float]]], list[tuple[int, float]]]:
    """Per-fold (epoch, value) lines and their mean over the folds that have each epoch."""
    lines = [[(r["epoch"], r[key]) for r in hist if r.get(key) is not None] for _, hist in sorted(histories.items())]
    lines = [line for line in lines if line]
    by_epoch: dict[int, list[float]] = {}
    for line in lines:
        for epoch, value in line:
            by_epoch.setdefault(epoch, []).append(value)
    return lines, [(ep, math.fsum(v) / len(v)) for ep, v in sorted(by_epoch.items())]


def training_curves(results: Results, dataset: str) -> FigureSpec | None:
    """Training loss and test-fold DSC per epoch for every trained model on one dataset."""
    runs = [e for e in results.entries if e.dataset == dataset and e.kind == "run" and e.histories]
    if not any(_curve(e.histories, "train_loss")[0] for e in runs):
        return None
    fig, (ax_loss, ax_dsc) = new_figure(2, 2, (5.4, 4.0))
    with matplotlib.rc_context(STYLE):
        for i, entry in enumerate(runs):
            color = _ours_color(i, entry.paper_name)
            for ax, key in ((ax_loss, "train_loss"), (ax_dsc, "dsc")):
                lines, mean = _curve(entry.histories, key)
                for line in lines:
                    ax.plot([p[0] for p in line], [p[1] for p in line], color=color, alpha=0.3, lw=0.8)
                if mean:
                    ax.plot([p[0] for p in mean], [p[1] for p in mean], color=color, lw=2,
                            marker="o" if len(mean) < 15 else None, ms=3, label=entry.label)
        for ax in (ax_loss, ax_dsc):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_loss.set_title("Training loss")
        ax_loss.set_xlabel("Epoch")
        ax_loss.set_ylabel("Training loss (per-epoch mean)")
        ax_loss.legend(loc="upper right")
        ax_dsc.set_title("Test-fold DSC")
        ax_dsc.set_xlabel("Epoch")
        ax_dsc.set_ylabel("DSC (%), paper policy")
        if not ax_dsc.lines:
            ax_dsc.text(0.5, 0.5, "no per-epoch test metrics recorded", ha="center", va="center",
                        transform=ax_dsc.transAxes)
        fig.suptitle(f"Training curves on {dataset} (thin: folds, thick: mean over folds)")
    caption = (f"Per-epoch training loss and test-fold DSC on {dataset}, from the run records' history. The loss "
               "is each model's training objective: for models with auxiliary heads (MiniSeg: three) it sums "
               "the weighted loss of every head, so its level is not comparable across models.")
    return FigureSpec(f"training_curves_{dataset}", f"Training curves, {dataset}", caption, fig)


MIN_MODELS_FOR_RANKS = 3


def _ranked_models(result: dict) -> list[str]:
    """The compared models, best mean first."""
    models = result["models"]
    return sorted(models, key=lambda n: (models[n].get("rank") or 0, n))


def _sort_crossbar_points(drawn: dict | None) -> None:
    """Each crossbar's points left to right: scikit-posthocs lists them in the order of a set of model names, which
    changes with Python's string hashing from one process to the next, and so would the bar's pixels."""
    for lines in (drawn or {}).get("crossbars", []):
        for line in lines:
            xs, ys = line.get_xdata(), line.get_ydata()
            order = sorted(range(len(xs)), key=lambda i: xs[i])
            line.set_data([xs[i] for i in order], [ys[i] for i in order])


def cd_diagram(dataset: str, stats_here) -> FigureSpec | None:
    """Critical-difference diagram (Demšar 2006) of the complete models' mean DSC ranks, Nemenyi at alpha 0.05."""
    import pandas as pd
    import scikit_posthocs

    comparison = stats_here.comparison if stats_here else None
    if comparison is None or comparison.nemenyi_p is None or len(comparison.models) < MIN_MODELS_FOR_RANKS:
        return None
    result, names = comparison.result, comparison.models
    ranks = {n: result["models"][n]["mean_rank"] for n in names}
    p = pd.DataFrame(comparison.nemenyi_p, index=names, columns=names)
    cd = result["posthoc"]["critical_difference"]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(8.5, 1.4 + 0.32 * len(names)), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        palette = {n: (MINISEG_COLOR if n == result["reference"] else OURS_COLORS[i % len(OURS_COLORS)])
                   for i, n in enumerate(names)}
        drawn = scikit_posthocs.critical_difference_diagram(ranks, p, ax=ax, alpha=result["alpha"],
                                                            color_palette=palette,
                                                            label_fmt_left="{label} ({rank:.2f})",
                                                            label_fmt_right="({rank:.2f}) {label}")
        _sort_crossbar_points(drawn)
        ax.set_title(f"{dataset}: mean rank of per-slice DSC (1 = best), Friedman p = {result['friedman_p']:.2g}\n"
                     f"bars join models the Nemenyi test cannot tell apart (alpha {result['alpha']}, CD = {cd:.2f})",
                     fontsize=9)
    caption = (f"Critical-difference diagram (Demšar 2006) on {dataset}: each complete model's mean rank of the "
               f"per-slice DSC over {result['n_cases_all_models']} slices (paper policy); a horizontal bar joins "
               "models whose Nemenyi post-hoc p is ≥ 0.05 (scikit-posthocs).")
    return FigureSpec(f"cd_{dataset}", f"Critical-difference diagram, {dataset}", caption, fig)


def rank_stability_plot(dataset: str, stats_here) -> FigureSpec | None:
    """How often each model takes each rank over the bootstrap resamples (leaderboard by mean DSC)."""
    comparison = stats_here.comparison if stats_here else None
    if comparison is None or comparison.stability is None or len(comparison.models) < MIN_MODELS_FOR_RANKS:
        return None
    result = comparison.result
    order = _ranked_models(result)
    k = len(order)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(max(6.0, 2.4 + 0.9 * k), 1.3 + 0.45 * k), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        for y, name in enumerate(order):
            dist = result["models"][name]["rank_distribution"]
            for rank_text, share in dist.items():
                ax.scatter([int(rank_text)], [y], s=900 * share, c=_ours_color(y, None) if name != result["reference"]
                           else MINISEG_COLOR, alpha=0.75, edgecolors="black", linewidths=0.5, zorder=3)
                ax.annotate(f"{100 * share:.0f}%", (int(rank_text), y), xytext=(0, -14), textcoords="offset points",
                            ha="center", fontsize=7)
        ax.set_yticks(range(k), order)
        ax.set_xticks(range(1, k + 1))
        ax.set_xlim(0.4, k + 0.6)
        ax.set_ylim(k - 0.4, -0.6)
        ax.set_xlabel("rank by mean DSC in a bootstrap resample (1 = best)")
        low, high = result["rank_tau_ci95"]
        ax.set_title(f"{dataset}: ranking stability over {result['n_resamples']} bootstrap resamples of "
                     f"{result['resampled']}\nKendall's tau with the full-data ranking: median "
                     f"{result['rank_tau_median']:.2f} [{low:.2f}, {high:.2f}]", fontsize=9)
    caption = (f"Rank stability on {dataset}: the share of bootstrap resamples (of {result['resampled']}) in which "
               "each complete model takes each rank by mean per-slice DSC; Kendall's tau compares each resampled "
               "ranking with the full-data one.")
    return FigureSpec(f"rank_stability_{dataset}", f"Rank stability, {dataset}", caption, fig)


def all_figures(results: Results) -> list[FigureSpec]:
    """Every figure the results allow, in the order the page shows them."""
    specs: list[FigureSpec | None] = [dsc_vs_gmacs(results), throughput_vs_params(results), folds_box(results)]
    specs += [training_curves(results, d) for d in datasets_in(results)]
    for dataset in sorted(results.significance):
        specs += [cd_diagram(dataset, results.significance[dataset]),
                  rank_stability_plot(dataset, results.significance[dataset])]
    return [s for s in specs if s is not None]

