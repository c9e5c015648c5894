"""Entry point of one ``hybrid run --workers N`` process (started with ``spawn``).

Kept free of Lava imports at module level: importing Lava's runtime calls
``multiprocessing.set_start_method('fork')``, which fails in a spawned process whose
start method is already set, so the worker clears it first and imports the runtime after.
"""
from __future__ import annotations

import multiprocessing
import signal


def main(art_path, dataset, names, labels, indices, top, compare, conv, skip, q) -> None:
    """Run ``indices`` and put ``("video", i, record)``, ``("error", None, message)`` and
    finally ``("done", None, None)`` on ``q``. SIGTERM (the parent stopping the run)
    unwinds like Ctrl-C, so the Lava processes of this worker are ended too."""

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    multiprocessing.set_start_method(None, force=True)  # Lava sets 'fork' for its own
    try:
        import torch

        from deploy.artifact import load_artifact
        from deploy.runtime import run_shard

        torch.set_num_threads(1)  # one core a worker; threads would contend across workers
        run_shard(load_artifact(art_path), dataset, names, labels, indices, top, compare,
                  conv, skip, lambda i, rec: q.put(("video", i, rec)))
    except KeyboardInterrupt:
        return
    except Exception as exc:  # noqa: BLE001  reported to the parent, which raises it
        q.put(("error", None, f"{type(exc).__name__}: {exc}"))
    finally:
        q.put(("done", None, None))
