"""Entry point of one ``hybrid run --workers N`` process (started with ``spawn``).

Kept free of Lava imports at module level: importing Lava's runtime calls
``multiprocessing.set_start_method('fork')``, which fails in a spawned process whose
start method is already set, so the worker clears it first and imports the runtime after.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
import signal

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _signal_on_parent_death(sig: int) -> None:
    """Linux: the kernel sends ``sig`` to this process when its parent dies (elsewhere a
    no-op; the parent's own clean-up still runs)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))
    except (OSError, AttributeError):
        pass


def _in_lava_child() -> None:
    """In each process Lava forks from this worker: a plain SIGTERM again (the worker's
    handler below would make it unwind through Lava's loop instead of ending), and a
    SIGKILL when the worker dies, so no Lava process outlives its worker."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _signal_on_parent_death(signal.SIGKILL)


def main(tasks, q) -> None:
    """Take one shard from ``tasks``: ``(art, dataset, names, labels, indices, top,
    compare, conv, skip)``; run its ``indices`` of the loaded artifact ``art`` (the
    parent's: the bytes it verified, not the folder read again) and put ``("video", i,
    record)``, ``("error", None, message)`` and finally ``("done", None, None)`` on
    ``q``, first ``("tmp", None, folder)``: its temporary folder, made now so that the
    Lava processes it forks share it, for the parent to remove should this worker be
    killed outright. SIGTERM (the parent stopping the run) unwinds like Ctrl-C, so the
    Lava processes of this worker are ended too; the worker leads its own process
    group, so the parent can also end it and every Lava process it forked at once (a
    signal taken by one of Lava's threads never reaches the main one)."""

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    os.setpgid(0, 0)  # a process group of its own: the parent can end it with its Lava
    signal.signal(signal.SIGTERM, on_term)
    _signal_on_parent_death(signal.SIGTERM)  # the run's process died: clean up, end
    os.register_at_fork(after_in_child=_in_lava_child)
    multiprocessing.set_start_method(None, force=True)  # Lava sets 'fork' for its own
    # a folder of its own: a spawned process inherits its parent's pymp-* path (the
    # Process object carries the parent's config), and the parent removes what is
    # reported here once the workers end (it had removed its own folder)
    multiprocessing.current_process()._config.pop("tempdir", None)
    q.put(("tmp", None, multiprocessing.util.get_temp_dir()))
    try:
        import torch

        from deploy.runtime.engine import run_shard

        art, dataset, names, labels, indices, top, compare, conv, skip = tasks.get()
        torch.set_num_threads(1)  # one core a worker; threads would contend across workers
        run_shard(art, dataset, names, labels, indices, top, compare,
                  conv, skip, lambda i, rec: q.put(("video", i, rec)))
    except KeyboardInterrupt:
        return
    except Exception as exc:  # noqa: BLE001  reported to the parent, which raises it
        q.put(("error", None, f"{type(exc).__name__}: {exc}"))
    finally:
        q.put(("done", None, None))
