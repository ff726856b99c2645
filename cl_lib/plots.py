"""One style for every figure of the book, and the figures chapters share.

Accuracies are drawn in percent. `save` writes each figure as PNG under `_build/figures/<chapter>/`
so figures can be inspected outside the notebook too.
"""
from __future__ import annotations

from pathlib import Path

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
    ax.grid(False)
    return ax


def curves(series: Mapping[str, Sequence[float] | np.ndarray], ax: plt.Axes, *, ylabel: str,
           xlabel: str = "tasks seen", title: str = "", percent: bool = True, x: Sequence[float] | None = None,
           styles: Mapping[str, dict] | None = None, legend: bool = True) -> plt.Axes:
    """Metric-vs-task lines, one per learner (values in [0, 1] drawn as percent when `percent`). A series given
    as a 2-D array (seeds × steps) is drawn as its mean with ±1 std error bars over the seeds."""
    for i, (label, ys) in enumerate(series.items()):
        ys = np.asarray(ys, dtype=float) * (100 if percent else 1)
        mean, std = (ys.mean(0), ys.std(0)) if ys.ndim == 2 else (ys, None)
        xs = np.arange(1, len(mean) + 1) if x is None else np.asarray(x)
        kw = {"marker": "o", "color": sns.color_palette(PALETTE)[i % 10]}
        kw.update((styles or {}).get(label, {}))
        if std is not None and len(ys) > 1:
            ax.errorbar(xs, mean, yerr=std, capsize=3, label=f"{label} (mean ± std, {len(ys)} seeds)", **kw)
        else:
            ax.plot(xs, mean, label=label, **kw)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" (%)" if percent else ""))
    if x is None:
        ax.set_xticks(np.arange(1, max(np.asarray(v).shape[-1] for v in series.values()) + 1))
    ax.set_title(title)
    if legend:
        ax.legend(frameon=True, fontsize=9)
    return ax


def layer_shift(values: np.ndarray, ax: plt.Axes, *, layers: Sequence[str], title: str = "",
                label: str = "1 − CKA with the pretrained model", cmap: str = "magma_r", vmin: float = 0.0,
                vmax: float | None = None) -> plt.Axes:
    """Heatmap layers × tasks of a per-layer shift measure (e.g. 1 − CKA). Pass the colour range here, not later:
    the numbers' colour (dark or light) is chosen against it (chapter 04's difference map)."""
    values = np.asarray(values, dtype=float)
    sns.heatmap(values, ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, annot=values.size <= 120, fmt=".2f",
                xticklabels=task_labels(values.shape[1]), yticklabels=list(layers),
                cbar_kws={"label": label}, annot_kws={"size": 7})
    ax.set_xlabel("after training task")
    ax.set_ylabel("layer (input → output)")
    ax.set_title(title)
    ax.grid(False)
    return ax


def alt_text(fig: plt.Figure) -> str:
    """A figure's alt text: its title and the titles and axis labels of its panels."""
    parts = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) is not None else []
    for ax in fig.axes:
        bits = [ax.get_title(), f"{ax.get_ylabel()} against {ax.get_xlabel()}" if ax.get_xlabel() and ax.get_ylabel() else ""]
        parts.append(" — ".join(b for b in bits if b))
    text = "; ".join(p for p in parts if p)
    return text[:600] or "figure"


def save(fig: plt.Figure, chapter: str, name: str) -> str:
    """Save `fig` as `_build/figures/<chapter>/<name>.png`; return the path (relative to the repo)."""
    path = config.figure_dir(chapter) / f"{name}.png"
    fig.savefig(path)
    try:
        return str(path.relative_to(config.ROOT))
    except ValueError:
        return path.name


def show(fig: plt.Figure, chapter: str, name: str, *, caption: str, alt: str | None = None) -> None:
    """Save `fig` (see `save`) and display exactly that PNG, with alt text, then its caption; close the figure.

    The caption says what to look at. It is shown under the image in JupyterLab, and it travels in the image's
    metadata (`cl_book.caption`), from which the site makes a numbered figure (scripts/site.py)."""
    import base64

    from IPython.display import Markdown, display

    if not caption.strip():
        raise ValueError(f"plots.show: figure {name!r} has an empty caption; say in a sentence what to look at.")
    path = config.figure_dir(chapter) / f"{name}.png"
    save(fig, chapter, name)
    alt = alt or alt_text(fig)
    plt.close(fig)
    meta = {"image/png": {"alt": alt}, "cl_book": {"figure": name, "caption": caption}}
    display({"image/png": base64.b64encode(path.read_bytes()).decode(), "text/plain": f"<figure {name}: {alt[:80]}>"},
            raw=True, metadata=meta)
    display(Markdown(f"*Figure ({name}).* {caption}"), metadata={"cl_book": {"caption_of": name}})


def task_slider(draw: Callable[[int], None], n_tasks: int, default: int | None = None,
                description: str = "after task") -> None:
    """A slider over tasks (1-based) calling `draw(t)` with t 0-based; `draw` ends with `plots.show`.

    The default (the last task unless given) is drawn at once. In a static run (tests, the book build) only the
    default is drawn, as a plain image: no widget state that a static page could not show."""
    default = n_tasks - 1 if default is None else default
    controls(lambda t: draw(t - 1), {"t": (1, n_tasks)}, {"t": default + 1}, labels={"t": description})


def controls(draw: Callable[..., None], options: Mapping[str, Sequence | tuple], defaults: Mapping[str, object],
             labels: Mapping[str, str] | None = None) -> None:
    """Widgets for the knobs of a figure: `options` maps each argument of `draw` to a (min, max) integer range or a
    list of choices; `defaults` is what a static run draws (once, as a plain image). Redraws on release."""
    if config.static():
        import time

        t0 = time.perf_counter()
        draw(**defaults)
        print(f"(widget drawn at its default {dict(defaults)} in {time.perf_counter() - t0:.2f} s; interactive in JupyterLab)")
        return
    import ipywidgets as widgets
    from IPython.display import display

    boxes = {}
    for key, opt in options.items():
        desc = (labels or {}).get(key, key)
        if isinstance(opt, tuple) and len(opt) == 2 and all(isinstance(v, int) for v in opt):
            boxes[key] = widgets.IntSlider(value=defaults[key], min=opt[0], max=opt[1], step=1, description=desc,
                                           continuous_update=False)
        else:
            boxes[key] = widgets.Dropdown(options=list(opt), value=defaults[key], description=desc)
    out = widgets.Output()

    def redraw(change=None) -> None:
        with out:
            out.clear_output(wait=True)
            draw(**{k: b.value for k, b in boxes.items()})

    for b in boxes.values():
        b.observe(redraw, names="value")
    display(widgets.VBox([widgets.HBox(list(boxes.values())), out]))
    redraw()


def code_location(obj) -> str:
    """Where an object's source lives, relative to the repository: ``cl_lib/methods/dkvb.py:58``."""
    import inspect

    path = Path(inspect.getsourcefile(obj)).resolve()
    where = path.relative_to(config.ROOT) if path.is_relative_to(config.ROOT) else path.name
    return f"{where.as_posix() if isinstance(where, Path) else where}:{inspect.getsourcelines(obj)[1]}"


def show_code(*objs) -> None:
    """Display the source of cl_lib functions or classes in the notebook, each headed by the file and line it lives
    at (a comment), so that a reader can open and edit the real code."""
    import inspect

    from IPython.display import Code, display

    display(Code("\n\n".join(f"# {code_location(o)}\n{inspect.getsource(o)}" for o in objs), language="python"))
