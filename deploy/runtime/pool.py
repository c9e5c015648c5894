"""A run of an artifact over a dataset, sharded over ``spawn``-ed worker processes.

Each worker (:mod:`deploy.runtime.worker`) runs :func:`deploy.runtime.engine.run_shard`
with its own Lava runtimes and reports records on a queue. An interrupted run (Ctrl-C,
SIGTERM of a worker) ends every Lava process it started.
"""
from __future__ import annotations

import multiprocessing
import os
import queue as queue_mod
import shutil
import signal
import time
from collections.abc import Callable, Sequence

import numpy as np

from deploy.artifact.folder import Artifact
from deploy.runtime import worker
from deploy.runtime.engine import STAGES, run_shard
from neuro.shutdown import held_signals, unlink_shm


class RunWorkerError(RuntimeError):
    """A worker of ``hybrid run --workers`` failed or was killed; ``str()`` is one line
    (the CLI prints it as the command's error). The other workers are stopped."""


def _check_workers(procs) -> None:
    """Raise :class:`RunWorkerError` for a worker that ended by a signal or with an error
    status: one killed (SIGKILL by the OOM killer or a user) never reports, and the run
    waited for the others to finish before a RuntimeError traceback."""
    for p in procs:
        code = p.exitcode
        if code is not None and code != 0:
            how = (f"was killed by {signal.Signals(-code).name}" if code < 0
                   else f"exited with status {code}")
            raise RunWorkerError(f"run worker {p.name} (pid {p.pid}) {how}; the run is "
                                 "stopped, its other workers ended")


def _stop(procs, grace: float = 5.0) -> None:
    """SIGTERM every worker (each ends its Lava processes and exits), wait up to
    ``grace`` seconds, then SIGKILL each worker's process group: the worker and every
    Lava process it forked (a worker blocked in a Lava channel may never see SIGTERM)."""
    procs = [p for p in procs if p.pid is not None]  # started (Ctrl-C may stop the starts)
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the worker leads its group (deploy.runtime.worker)
        except (ProcessLookupError, PermissionError):
            if p.is_alive():  # not yet its own group leader
                p.kill()
        p.join(5)


def run_videos(art: Artifact, dataset, names: Sequence[str],
               labels: Sequence[int] | None = None, workers: int = 1, top: int = 5,
               compare: bool = False, conv: str = "fused",
               skip: tuple[type[BaseException], ...] = (),
               progress: Callable[[int], None] | None = None) -> dict:
    """Run every item of ``dataset`` (named ``names``, true class indices ``labels`` when
    known) through the artifact, sharded over ``workers`` processes. Items raising one
    of ``skip`` are reported and left out. ``progress(1)`` after each video. Returns the
    run's JSON-ready report."""
    n = len(names)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    results: dict[int, dict] = {}
    compile_s: list[float] = []
    shm: list[str] = []  # the workers' Lava shared memory, unlinked after they end
    t_start = time.perf_counter()

    def emit(i, rec):
        if i < 0:
            compile_s.append(rec["compile_s"])
            shm.extend(rec.get("shm", []))
            return
        results[i] = rec
        if progress is not None:
            progress(1)

    workers = min(workers, max(n, 1))
    if workers == 1:
        run_shard(art, dataset, names, labels, range(n), top, compare, conv, skip, emit)
    else:
        # spawn, not fork: a process forked after Lava and onnxruntime have run threads
        # here can inherit a held lock and hang; a spawned worker starts clean
        ctx = multiprocessing.get_context("spawn")
        q = ctx.Queue()
        # each worker's shard goes on a queue once it is started, not as an argument of
        # its start: the artifact's bytes (MBs) would be written to the starting worker
        # inside Process.start(), where the signals are held (held_signals); a worker
        # killed meanwhile (SIGTERM of the group) left the command waiting there for good
        tasks = ctx.Queue()
        tasks.cancel_join_thread()  # at exit, never wait to hand a task a worker never took
        # each worker's temporary folder (multiprocessing's pymp-*, shared by the Lava
        # processes it forks), removed after the workers end: one killed outright
        # (SIGKILL) cannot remove its own
        scratch: list[str] = []
        procs = [ctx.Process(target=worker.main, name=f"hybrid-run-{w}", args=(tasks, q))
                 for w in range(workers)]
        try:
            # SIGINT and SIGTERM held while they start (one raised inside start() left a
            # worker untracked: it printed a traceback after the run had ended), SIGINT
            # blocked in them: Ctrl-C reaches the whole group, the parent alone handles
            # it and stops the workers by SIGTERM (_stop)
            with held_signals():
                for p in procs:
                    p.start()
            for w in range(workers):
                tasks.put((art, dataset, names, labels, range(w, n, workers), top, compare,
                           conv, skip))
            done, errors = 0, []
            while done < workers:
                try:
                    kind, i, rec = q.get(timeout=1.0)
                except queue_mod.Empty:
                    _check_workers(procs)
                    if not any(p.is_alive() for p in procs) and q.empty():
                        raise RunWorkerError("a run worker ended without reporting") from None
                    continue
                if kind == "tmp":
                    scratch.append(rec)
                elif kind == "video":
                    emit(i, rec)
                elif kind == "error":
                    errors.append(rec)
                else:
                    done += 1
            if errors:
                raise RunWorkerError(f"a run worker failed: {errors[0]}")
        finally:
            _stop(procs)
            unlink_shm(shm)  # a killed worker's (its Lava manager, dying with it, did not)
            own = multiprocessing.current_process()._config.get("tempdir")
            for d in scratch:
                if d != own:  # never this process's own folder
                    shutil.rmtree(d, ignore_errors=True)
    return summarize(art, [results[i] for i in sorted(results)], compare, workers,
                     compile_s, time.perf_counter() - t_start)


def summarize(art: Artifact, records: list[dict], compare: bool, workers: int,
              compile_s: list[float], wall_s: float) -> dict:
    videos = [r for r in records if "error" not in r]
    rep = {"artifact": str(art.path), "videos": videos,
           "skipped": [r for r in records if "error" in r], "workers": workers,
           "bridge_bytes_per_video": art.bridge_bytes_per_video,
           "compile_seconds": compile_s, "wall_seconds": wall_s,
           "seconds_per_video": {s: (float(np.mean([v["seconds"][s] for v in videos]))
                                     if videos else None) for s in STAGES}}
    labelled = [v for v in videos if "label" in v]
    if labelled:
        rep["top1"] = sum(v["correct"] for v in labelled) / len(labelled)
    if compare:
        cmp = [v["compare"] for v in videos]
        rep["agreement"] = (sum(c["top1_agrees"] for c in cmp) / len(cmp)) if cmp else None
        rep["spikes_equal"] = all(c["spikes_equal"] for c in cmp)
        rep["max_logit_diff"] = max((c["max_logit_diff"] for c in cmp), default=None)
        if labelled:
            rep["top1_torch_qat"] = sum(v["compare"]["torch_correct"] for v in labelled) / len(
                labelled)
    return rep
