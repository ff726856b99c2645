"""One style for every figure of the book, and the figures chapters share.

Accuracies are drawn in percent. `save` writes each figure as PNG under `_build/figures/<chapter>/`
so figures can be inspected outside the notebook too.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from . import config

PALETTE = "colorblind"


def set_style() -> None:
    """The book's look: seaborn whitegrid, colour-blind palette, readable sizes."""
    sns.set_theme(style="whitegrid", palette=PALETTE, context="notebook")
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 120, "savefig.bbox": "tight",
                                "axes.titleweight": "bold", "figure.autolayout": False})


def task_labels(n: int, prefix: str = "T") -> list[str]:
    return [f"{prefix}{i + 1}" for i in range(n)]


def accuracy_matrix(R: np.ndarray, ax: plt.Axes, title: str = "", names: Sequence[str] | None = None,
                    cbar: bool = True) -> plt.Axes:
    """Heatmap of R[i, j] (percent): rows = after training task i, columns = evaluated on task j."""
    R = np.asarray(R, dtype=float) * 100
    names = list(names) if names is not None else task_labels(len(R))
    sns.heatmap(R, ax=ax, vmin=0, vmax=100, cmap="viridis", annot=len(R) <= 12, fmt=".0f", square=True,
                cbar=cbar, cbar_kws={"label": "accuracy (%)"} if cbar else None,
                xticklabels=names, yticklabels=names, mask=np.isnan(R), annot_kws={"size": 8})
    ax.set_xlabel("evaluated on task")
    ax.set_ylabel("after training task")
    ax.set_title(title)
    return ax


def curves(series: Mapping[str, Sequence[float]], ax: plt.Axes, *, ylabel: str, xlabel: str = "tasks seen",
           title: str = "", percent: bool = True, x: Sequence[float] | None = None,
           styles: Mapping[str, dict] | None = None) -> plt.Axes:
    """Metric-vs-task lines, one per learner (values in [0, 1] drawn as percent when `percent`)."""
    for i, (label, ys) in enumerate(series.items()):
        ys = np.asarray(ys, dtype=float) * (100 if percent else 1)
        xs = np.arange(1, len(ys) + 1) if x is None else np.asarray(x)
        kw = {"marker": "o", "color": sns.color_palette(PALETTE)[i % 10]}
        kw.update((styles or {}).get(label, {}))
        ax.plot(xs, ys, label=label, **kw)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" (%)" if percent else ""))
    if x is None:
        ax.set_xticks(np.arange(1, max(len(v) for v in series.values()) + 1))
    ax.set_title(title)
    ax.legend(frameon=True, fontsize=9)
    return ax


def layer_shift(values: np.ndarray, ax: plt.Axes, *, layers: Sequence[str], title: str = "",
                label: str = "1 − CKA with the pretrained model", cmap: str = "magma_r") -> plt.Axes:
    """Heatmap layers × tasks of a per-layer shift measure (e.g. 1 − CKA)."""
    values = np.asarray(values, dtype=float)
    sns.heatmap(values, ax=ax, cmap=cmap, vmin=0, annot=values.size <= 120, fmt=".2f",
                xticklabels=task_labels(values.shape[1]), yticklabels=list(layers),
                cbar_kws={"label": label}, annot_kws={"size": 7})
    ax.set_xlabel("after training task")
    ax.set_ylabel("layer (input → output)")
    ax.set_title(title)
    return ax


def save(fig: plt.Figure, chapter: str, name: str) -> str:
    """Save `fig` as `_build/figures/<chapter>/<name>.png`; return the path (relative to the repo)."""
    path = config.figure_dir(chapter) / f"{name}.png"
    fig.savefig(path)
    try:
        return str(path.relative_to(config.ROOT))
    except ValueError:
        return path.name


def task_slider(draw: Callable[[int], None], n_tasks: int, default: int | None = None,
                description: str = "after task") -> None:
    """An ipywidgets slider over tasks (1-based) calling `draw(t)` with t 0-based.

    The default (the last task unless given) is drawn at once, so a headless run renders the same figure.
    """
    import ipywidgets as widgets
    from IPython.display import display

    default = n_tasks - 1 if default is None else default
    out = widgets.Output()
    slider = widgets.IntSlider(value=default + 1, min=1, max=n_tasks, step=1, description=description,
                               continuous_update=False)

    def show(change=None) -> None:
        with out:
            out.clear_output(wait=True)
            draw(slider.value - 1)
            plt.show()

    slider.observe(show, names="value")
    display(widgets.VBox([slider, out]))
    show()


def show_code(*objs) -> None:
    """Display the source of cl_lib functions or classes in the notebook: the reader sees the real code."""
    import inspect

    from IPython.display import Code, display

    display(Code("\n\n".join(inspect.getsource(o) for o in objs), language="python"))
