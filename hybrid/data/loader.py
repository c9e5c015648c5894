"""What training and evaluation put between a dataset and the model: the DataLoader's
workers (how they start, :func:`~hybrid.data.loader.loader_options`), per-item seeds
that make a sample independent of the worker that reads it
(:class:`~hybrid.data.loader.SeededSampler`), and unreadable videos carried to the
training process to be reported (:class:`~hybrid.data.loader.SkipBadVideos`).

Light on purpose: workers import this module (torch, the datasets), not the model."""
from __future__ import annotations

import atexit
import contextlib
import multiprocessing as mp
import random
import sys
import weakref

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from hybrid.data.dataset import UNREADABLE
from hybrid.data.mpstart import default_kept, forkserver_context
from neuro.shutdown import held_signals


class SkipBadVideos(Dataset):
    """Wraps a dataset so that a video that cannot be read is left out of its batch
    instead of ending the run: its item becomes ``{"unreadable": message}``, which
    :func:`collate_readable` carries to the training process to report (a worker's own
    log does not reach the user's console when it is spawned).

    Indices come as ``(i, seed)`` from :class:`SeededSampler`: the wrapped dataset's
    ``rng`` (segments, crops, flips) is reseeded per item, so a sample depends on the run
    seed, the epoch and the video alone, not on which worker drew it or what that worker
    drew before (persistent workers live across epochs; a resumed run has fresh ones)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        i, seed = item if isinstance(item, tuple) else (item, None)
        if seed is not None and isinstance(getattr(self.dataset, "rng", None), random.Random):
            self.dataset.rng = random.Random(seed)
        try:
            return self.dataset[i]
        except UNREADABLE as exc:
            return {"unreadable": str(exc)}


class SeededSampler(torch.utils.data.Sampler):
    """The indices of ``sampler`` (e.g. a DistributedSampler, which shuffles per epoch),
    each paired with its own seed derived from (``seed``, epoch, index)."""

    def __init__(self, sampler, seed: int) -> None:
        self.sampler, self.seed, self.epoch = sampler, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for i in self.sampler:
            yield int(i), (self.seed * 1_000_003 + self.epoch) * 10_000_019 + int(i)


def collate_readable(batch: list) -> dict:
    """default_collate of the samples that could be read, plus ``skipped``: the messages
    of those that could not (a batch of only those has no other entry)."""
    skipped = [b["unreadable"] for b in batch if "unreadable" in b]
    good = [b for b in batch if "unreadable" not in b]
    return {**(default_collate(good) if good else {}), "skipped": skipped}


def worker_start(worker_id: int) -> None:
    """DataLoader worker init: python's and numpy's global streams per worker (the
    dataset's own draws are seeded per item, see :class:`SkipBadVideos`), and no
    traceback for a connection the training process dropped (``_quiet_dropped``)."""
    seed = torch.initial_seed() % 2**32  # base seed of the loader + worker id
    random.seed(seed)
    np.random.seed(seed)
    sys.excepthook = _quiet_dropped


def _quiet_dropped(exc_type, exc, tb) -> None:
    """A worker hands each batch's shared memory to the training process through
    multiprocessing's resource sharer, a thread of the worker that serves file
    descriptors and reports its errors by ``sys.excepthook``. A Ctrl-C that
    interrupts the training process mid-hand-over drops the connection, and the
    worker printed a BrokenPipeError traceback under "interrupted" (a CI run of
    `pretrain`): the training process reports what happened; a dropped connection
    (a broken pipe or reset, or its end of file) says nothing here. Every other error
    is printed as before."""
    if not issubclass(exc_type, (ConnectionError, EOFError)):
        sys.__excepthook__(exc_type, exc, tb)


# How DataLoader workers start: forkserver, never a fork of the training process. A
# worker forked from a process with live threads (a PyAV codec's, torch's intra-op pool,
# a Lava runtime's) can inherit a lock some thread held at the fork and wait on it
# forever; the same hang stalled CI in ``hybrid prepare`` (hybrid.data.cache). The fork
# server is a fresh interpreter (started once per process, serving every loader) that
# imports PRELOAD and then only forks: its one other thread is numpy's idle BLAS pool,
# which has fork handlers. Spawn is as safe but imports torch once per worker and per
# loader (docs/benchmarks.md, "Reading and loading data", gives both costs). Loader
# leaves the process's default start method unset (Lava sets it at import, fails if set).
#: Start method of the loader's workers (see the comment above).
WORKER_START = "forkserver"
# what workers import (torch with this module); the fork server imports it once
PRELOAD = ["av", "h5py", "hybrid.data.loader", "hybrid.data.cache", "hybrid.video.extract"]


def loader_options(workers: int, device: torch.device) -> dict:
    """DataLoader options of training and evaluation: ``workers`` processes (from the
    fork server, :data:`WORKER_START`) that stay up across epochs and prefetch 4 batches
    each; pinned pages make the uint8 batches' copies to a GPU asynchronous."""
    ctx = None
    if workers:
        ctx = (forkserver_context(PRELOAD) if WORKER_START == "forkserver"
               else mp.get_context(WORKER_START))
    return dict(num_workers=workers, persistent_workers=workers > 0,
                prefetch_factor=4 if workers else None, multiprocessing_context=ctx,
                worker_init_fn=worker_start if workers else None,
                pin_memory=device.type == "cuda", collate_fn=collate_readable)


class Loader(DataLoader):
    """A DataLoader whose workers start without fixing the default start method (see
    :mod:`hybrid.data.mpstart`): a later Lava import in this process still works.

    Its workers start under :func:`~neuro.shutdown.held_signals` (a Ctrl-C or
    SIGTERM meanwhile comes once they are all started, after they are stopped), and an
    interrupted run stops them before it exits (``_stop_live_workers``)."""

    def _get_iterator(self):
        it = None
        try:
            with held_signals(), default_kept():
                it = super()._get_iterator()
        except BaseException:
            if it is not None:
                _stop_workers(it)
            raise
        if hasattr(it, "_shutdown_workers"):
            _live.add(it)
        return it


# iterators whose workers may still run (a run interrupted mid-epoch keeps them alive in
# its traceback until the process exits)
_live: weakref.WeakSet = weakref.WeakSet()


def _stop_workers(it) -> None:
    """Stop a loader iterator's workers now: each is told to end and joined (up to 5 s;
    torch's own shutdown, killing those that do not end)."""
    with contextlib.suppress(Exception):
        it._shutdown_workers()


@atexit.register
def _stop_live_workers() -> None:
    """At exit, before multiprocessing's own exit handler: a worker started just before
    a Ctrl-C may still be reading its process object, and multiprocessing at exit
    first removes the loader's locks and only then ends its workers, so that worker
    printed a FileNotFoundError traceback (seen in a fresh-clone CI run). Registered
    after torch's exit flag (which turns the iterators' own shutdown into a no-op), so
    it runs before it."""
    for it in list(_live):
        _stop_workers(it)
