"""Streams of tasks cut from a labelled data set: which classes come when, and which examples.

A stream is data, not behaviour: a seeded class order and, per task, its classes and the indices of its
train and test examples. Whether the learner is told the task at test time (task-incremental) or not
(class-incremental) is the `scenario` the chapter evaluates under.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    from .data import ImageSet, TextSet

SCENARIOS = ("class", "task")


@dataclass
class Task:
    """One task: its classes (data-set label ids, in stream order) and example indices per split."""

    id: int
    classes: list[int]
    train: np.ndarray
    test: np.ndarray
    name: str = ""


@dataclass
class Stream:
    """A sequence of tasks with disjoint classes."""

    name: str
    scenario: str
    seed: int
    tasks: list[Task]

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def class_order(self) -> list[int]:
        """All classes of the stream, task by task."""
        return [c for t in self.tasks for c in t.classes]

    @property
    def n_classes(self) -> int:
        return len(self.class_order)

    def label_map(self, n_labels: int) -> torch.Tensor:
        """Lookup from data-set label to stream label (position in `class_order`), -1 if unused.

        Stream labels make task t's classes a contiguous block, so one growing head serves the stream.
        """
        lut = torch.full((n_labels,), -1, dtype=torch.long)
        lut[torch.tensor(self.class_order)] = torch.arange(self.n_classes)
        return lut

    def task_slice(self, t: int) -> slice:
        """The stream labels of task t, as a slice into a head's outputs."""
        start = sum(len(k.classes) for k in self.tasks[:t])
        return slice(start, start + len(self.tasks[t].classes))

    def seen_slice(self, t: int) -> slice:
        """The stream labels of tasks 0..t."""
        return slice(0, self.task_slice(t).stop)

    def task_data(self, t: int, data: "ImageSet | TextSet", split: str = "train", *, local: bool = False
                  ) -> tuple[torch.Tensor | list[str], torch.Tensor]:
        """Task t's `split` ("train" or "test") examples from `data` (that split's set): inputs and labels.

        Labels are stream labels (task t's classes a contiguous block of one head), or 0..C_t-1 with `local`
        (a head per task). Images come as a uint8 tensor, texts as a list. Taught in chapter 0."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test' (the task's examples); got {split!r}.")
        idx = getattr(self.tasks[t], split)
        y = self.label_map(len(data.classes))[data.labels[idx]]
        if local:
            y = y - self.task_slice(t).start
        x = data.images[idx] if hasattr(data, "images") else [data.texts[i] for i in idx]
        return x, y


def per_class_subset(labels: Sequence[int] | torch.Tensor, classes: Sequence[int], per_class: int,
                     seed: int, skip: int = 0) -> np.ndarray:
    """Sorted indices of `per_class` seeded examples of each class: a fixed subset of a data set (chapter 5). With
    `skip`, the examples after the first `skip` of the same seeded order: disjoint from the subset `skip` would give
    (held-out examples to tune on, chapters 6 and 7)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[skip:skip + per_class] for c in classes]))


def _pick(labels: np.ndarray, cls: int, k: int | None, rng: np.random.Generator) -> np.ndarray:
    idx = np.flatnonzero(labels == cls)
    if k is not None and k < len(idx):
        idx = np.sort(rng.choice(idx, size=k, replace=False))
    return idx


def stream_from_groups(
    train_labels: Sequence[int] | torch.Tensor,
    test_labels: Sequence[int] | torch.Tensor,
    groups: Sequence[Sequence[int]],
    *,
    name: str = "stream",
    scenario: str = "class",
    seed: int = 0,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
    task_names: Sequence[str] | None = None,
) -> Stream:
    """A stream whose task t holds the classes `groups[t]` (e.g. CLINC150's domains)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"Unknown scenario {scenario!r}; use one of {SCENARIOS}.")
    flat = [c for g in groups for c in g]
    if len(set(flat)) != len(flat):
        raise ValueError("Tasks of a stream must have disjoint classes.")
    ytr, yte = np.asarray(train_labels), np.asarray(test_labels)
    rng = np.random.default_rng(seed)
    tasks = []
    for t, cls in enumerate(groups):
        tr = np.concatenate([_pick(ytr, c, train_per_class, rng) for c in cls])
        te = np.concatenate([_pick(yte, c, test_per_class, rng) for c in cls])
        if len(tr) == 0 or len(te) == 0:
            raise ValueError(f"Task {t} (classes {list(cls)}) has no train or no test examples.")
        tasks.append(Task(t, [int(c) for c in cls], tr, te, task_names[t] if task_names else f"task {t + 1}"))
    return Stream(name, scenario, seed, tasks)


def split_dataset(name: str, *, n_tasks: int, classes_per_task: int, seed: int = 0, **kwargs
                  ) -> tuple[Stream, "ImageSet | TextSet", "ImageSet | TextSet"]:
    """A data set's train and test split (`data.load`) and a `split_stream` of it: what most chapters start with."""
    from . import data

    tr, te = data.load(name, "train"), data.load(name, data.test_split(name))
    title = {"tiny_imagenet": "Split Tiny ImageNet", "cifar10": "Split CIFAR-10"}.get(name, f"Split {name}")
    kwargs.setdefault("name", title)
    return split_stream(tr.labels, te.labels, n_tasks=n_tasks, classes_per_task=classes_per_task, seed=seed,
                        **kwargs), tr, te


def split_stream(
    train_labels: Sequence[int] | torch.Tensor,
    test_labels: Sequence[int] | torch.Tensor,
    *,
    n_tasks: int,
    classes_per_task: int,
    seed: int = 0,
    classes: Sequence[int] | None = None,
    shuffle: bool = True,
    **kwargs,
) -> Stream:
    """Split the classes (all, or `classes`) into `n_tasks` tasks of `classes_per_task`, in a seeded order.

    `shuffle=False` keeps the given order (e.g. CIFAR-10's [0,1],[2,3],… as in several papers).
    """
    pool = np.array(sorted(set(np.asarray(train_labels).tolist())) if classes is None else list(classes))
    need = n_tasks * classes_per_task
    if need > len(pool):
        raise ValueError(f"{n_tasks} tasks x {classes_per_task} classes need {need} classes; only {len(pool)} given.")
    order = np.random.default_rng(seed).permutation(pool) if shuffle else pool
    groups = [order[t * classes_per_task:(t + 1) * classes_per_task].tolist() for t in range(n_tasks)]
    return stream_from_groups(train_labels, test_labels, groups, seed=seed, **kwargs)


def task_look(task: int, strength: float) -> tuple[torch.Tensor, float, float]:
    """Task `task`'s fixed photometric look: per-channel colour gains, a contrast factor and a brightness offset (grey
    levels), each drawn uniformly within ±`strength` (×64 for the offset) from the task's index alone. Chapter 4."""
    if not 0 <= strength < 1:
        raise ValueError(f"A look's strength must be in [0, 1) so that the gains stay positive; got {strength}.")
    g = torch.Generator().manual_seed(1000 + task)
    u = lambda n: torch.rand(n, generator=g) * 2 - 1  # noqa: E731  uniform in [-1, 1)
    return 1 + strength * u(3), float(1 + strength * u(1)), float(64 * strength * u(1))


def apply_look(images: torch.Tensor, task: int, strength: float) -> torch.Tensor:
    """uint8 images (N, H, W, 3) as task `task`'s camera sees them, still uint8 (unchanged at strength 0): each task
    its own colour cast, contrast and brightness, so that the statistics BN keeps move between tasks. Chapter 4."""
    if strength == 0:
        return images
    gains, contrast, offset = task_look(task, strength)
    x = (images.float() - 127.5) * contrast + 127.5 + offset
    return (x * gains).clamp(0, 255).round().to(torch.uint8)
