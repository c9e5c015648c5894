"""Lava runs that end (issue 27, item 1): Lava's own Conv model at the runtime's tiling,
and a Lava process that dies ends the run with its error instead of a silent wait."""
import json
import multiprocessing
import os
import signal
import sys

import pytest
from proctools import run_or_dump

import neuro  # noqa: F401  (before any lava import)
from neuro import runner as lava_runner
from neuro.export import export_stm
from neuro.runner import DEFAULT_TILES, LavaRunner
from neuro.stm import STM, STMConfig
from neuro.verify import random_mv
from neuro.watch import LavaProcessError

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.mark.parametrize("size", ["16x16", "20x28"])
def test_stm_verify_lava_conv_at_default_tiling_is_exact(size):
    """8 tiles side by side make a plane over 127 columns: Lava's Conv model overflowed
    its int8 shape parameters on NumPy 2 and the run waited forever for it."""
    res = run_or_dump([sys.executable, "-m", "hybrid", "stm", "verify", "--conv", "lava",
                       "--size", size, "--channels", "3", "--sequences", "8", "--json"],
                      timeout=240, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    rep = json.loads(res.stdout)
    assert rep["exact"] is True and rep["tiles"] == DEFAULT_TILES == 8
    assert rep["input_shape"][:3] == [3, *reversed([int(v) for v in size.split("x")])]
    assert all(layer["spikes_torch"] > 0 for layer in rep["layers"]), rep


@pytest.fixture
def stm_file(tmp_path):
    return export_stm(STM(STMConfig(widths=(2, 2, 2))), tmp_path / "stm.h5", (6, 6))


@pytest.mark.timeout(120)  # a hang fails with every thread's stack
def test_a_lava_process_that_raises_ends_the_run_with_its_error(stm_file, monkeypatch):
    from lava_faulty.conv import FailingConvModel

    from lava.proc.conv.process import Conv

    real_cfg = lava_runner.run_cfg

    def failing_cfg(conv):
        cfg = real_cfg(conv)
        cfg.exception_proc_model_map[Conv] = FailingConvModel
        return cfg

    monkeypatch.setattr(lava_runner, "run_cfg", failing_cfg)
    with pytest.raises(LavaProcessError, match="ValueError: boom at step 3") as err:
        with LavaRunner(stm_file, steps=3, conv="im2col", tiles=1) as r:
            r.run(random_mv(4, 2, 6, 6, 3, seed=0))
    assert "run_spk" in err.value.detail  # the process's own traceback
    assert multiprocessing.active_children() == [], "Lava processes left running"


@pytest.mark.timeout(120)
def test_a_killed_lava_process_ends_the_run(stm_file):
    with pytest.raises(LavaProcessError, match="killed by SIGKILL"):
        with LavaRunner(stm_file, steps=3, tiles=1) as r:
            receive = r.readout.receive

            def receive_then_kill(watch=None):
                out = receive(watch)
                victim = lava_runner.shutdown.runtime_actors(r.inj.runtime)[0]
                os.kill(victim.pid, signal.SIGKILL)
                return out

            r.readout.receive = receive_then_kill
            r.run(random_mv(6, 2, 6, 6, 3, seed=0))
    assert multiprocessing.active_children() == [], "Lava processes left running"
