"""A Ctrl-C or SIGTERM after the command has ended (its result printed; Python's exit
joining workers, removing temporary folders, collecting Lava's processes): it sets
the exit status, 130 / 143, and interrupts none of that clean-up; a second one ends
the process at once. Before, it raised inside the exit: the process killed itself by
SIGINT (-2), or printed a traceback per Lava process (CI runs of `profile`)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from proctools import sigint_default

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}

# the `hybrid` program with one more command, whose exit work (a temporary folder of
# multiprocessing's, an exit handler that takes HOLD_S) comes after its result
PROGRAM = """
import sys
import click
from hybrid.cli import main, program

HOLD_S = 8.0

def hold():
    import time
    print("exiting", flush=True)
    time.sleep(HOLD_S)
    print("exit work done", flush=True)

@main.command("late")
def late():
    import atexit, multiprocessing.util
    click.echo(f"result {multiprocessing.util.get_temp_dir()}")
    atexit.register(hold)

sys.argv = ["hybrid", "late"]
program()
"""


def _late(signals: list[int], tmp_path: Path) -> tuple[subprocess.Popen, str, float]:
    """Run PROGRAM, send ``signals`` once its exit work has begun; (process, its
    stdout and stderr, seconds from the first signal to its end)."""
    log = tmp_path / "log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-c", PROGRAM], stdout=f, stderr=f,
                                env={**ENV, "TMPDIR": str(tmp_path)},
                                preexec_fn=sigint_default)
    deadline = time.monotonic() + 60
    while "exiting" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    t0 = time.monotonic()
    for sig in signals:
        os.kill(proc.pid, sig)
        time.sleep(0.3)
    proc.wait(timeout=30)
    return proc, log.read_text(), time.monotonic() - t0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_after_the_result_sets_the_exit_status_and_lets_the_exit_finish(
        sig, tmp_path):
    proc, out, _ = _late([sig], tmp_path)
    assert proc.returncode == 128 + sig, (proc.returncode, out)
    assert "Traceback" not in out and "Exception ignored" not in out, out
    assert "exit work done" in out, out  # the clean-up was not interrupted
    folder = out.split("result ", 1)[1].split()[0]
    assert not os.path.exists(folder), "multiprocessing's exit handler did not run"


def test_a_second_ctrl_c_after_the_result_ends_the_process_at_once(tmp_path):
    proc, out, seconds = _late([signal.SIGINT, signal.SIGINT], tmp_path)
    assert proc.returncode == 130, (proc.returncode, out)
    assert "exit work done" not in out and seconds < 5, (seconds, out)
    assert "Traceback" not in out, out


# an object collected as Python tears down (after every exit handler, once Python has
# stopped handling signals), taking TEARDOWN_S: Lava's processes are collected there
TEARDOWN = """
import sys
import time
from hybrid.cli import program

class Slow:
    def __del__(self):
        print("teardown", flush=True)
        time.sleep(3)
        print("teardown done", flush=True)

slow = Slow()
sys.argv = ["hybrid", "--help"]
program()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_as_python_tears_down_leaves_the_commands_status(sig, tmp_path):
    log = tmp_path / "log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-c", TEARDOWN], stdout=f, stderr=f,
                                env=ENV, preexec_fn=sigint_default)
    deadline = time.monotonic() + 60
    while "teardown" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    out = log.read_text()
    assert proc.returncode == 0 and "teardown done" in out, (proc.returncode, out[-2000:])
