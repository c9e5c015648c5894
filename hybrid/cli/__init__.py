"""The ``hybrid`` command line. Subcommands live in small modules beside this one;
they import only click at module level, heavy imports happen inside commands, so
``hybrid --help`` is instant."""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys

import click

from hybrid.cli.chip import chip_cmd
from hybrid.cli.deploy import deploy, run
from hybrid.cli.doctor import demo, doctor
from hybrid.cli.explain import explain
from hybrid.cli.map import map_cmd, nir_cmd
from hybrid.cli.pretrain import pretrain
from hybrid.cli.profile import profile
from hybrid.cli.stm import stm
from hybrid.cli.summary import summary
from hybrid.cli.train import evaluate, predict, train
from hybrid.cli.video import extract, inspect, prepare, synth

INTERRUPTED = 128 + 2  # exit status after Ctrl-C (SIGINT), as a shell reports it


class _Group(click.Group):
    """The one path by which, whichever command raised it (train, eval, pretrain,
    profile, run, chip...), each of these becomes one line on stderr:
    - a file of a format this code does not read (a cache of an older version, an
      incomplete cache: :class:`hybrid.video.extract.FormatError`, whose message names
      the file and the fix): exit 1;
    - a full disk (``deploy.atomic.disk_full_message``: the path and its free space):
      exit 1;
    - a Lava process that died mid-run (:class:`neuro.watch.LavaProcessError`): exit 1;
    - Ctrl-C: "interrupted", exit 130 (click's own "Aborted!" exits 1), also when an
      error was raised from it (:func:`_interrupt_in`).
    SIGTERM exits 143 by :func:`neuro.shutdown.sigterm_as_exit`."""

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        finally:
            _forget_handled_interrupts()
            _command_ended()

    def invoke(self, ctx: click.Context):
        from neuro.shutdown import sigterm_as_exit

        try:
            # every command: SIGTERM shuts down as Ctrl-C does (Lava processes ended,
            # temporary files removed, worker pools stopped), exit status 143; a Ctrl-C
            # or SIGTERM Python dropped is raised as it ends, so within this ``try``
            with sigterm_as_exit():
                result = super().invoke(ctx)
            _command_ended()
            return result
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            raise SystemExit(INTERRUPTED) from None
        except Exception as e:
            interrupt = _interrupt_in(e)
            if isinstance(interrupt, KeyboardInterrupt):
                click.echo("\ninterrupted", err=True)
                raise SystemExit(INTERRUPTED) from None
            if interrupt is not None:  # SIGTERM's exit (neuro.shutdown.Terminated)
                raise SystemExit(interrupt.code) from None
            extract = sys.modules.get("hybrid.video.extract")  # loaded if it raised one
            if extract is not None and isinstance(e, extract.FormatError):
                raise click.ClickException(str(e)) from None
            watch = sys.modules.get("neuro.watch")
            if watch is not None and isinstance(e, watch.LavaProcessError):
                raise click.ClickException(str(e)) from None
            from deploy.atomic import disk_full_message

            message = disk_full_message(e)
            if message is not None:
                raise click.ClickException(message) from None
            raise


def _forget_handled_interrupts() -> None:
    """CPython (3.8 to at least 3.12) records a KeyboardInterrupt that leaves code run
    from text (``exec``/``eval`` of a string: a dataclass or namedtuple made at import,
    numpy.f2py) as unhandled, even when a caller handles it; a ``python -m`` run
    (``python -m hybrid``, ``torchrun -m hybrid``) then ends by killing itself with
    SIGINT instead of with its exit status: "interrupted", then exit -2, not 130 (5 of
    25 Ctrl-Cs in `eval`'s first seconds). Running code from text clears that record:
    done as every command ends, where the commands have handled any Ctrl-C (click turns
    one that reaches it into "Aborted!")."""
    exec("pass")


# the program's own exit (program): whether this process is the `hybrid` program, and the
# first SIGINT or SIGTERM that came after its command had ended
_exit = {"program": False, "signal": 0}


def program() -> None:
    """The ``hybrid`` program (its console script, ``python -m hybrid``): the command
    line, and a signal after the command as one during it. Tests call ``main``,
    which leaves the signals of the calling process alone."""
    _exit["program"] = True
    # registered before the command imports multiprocessing, torch or Lava: runs after
    # their exit handlers (which join worker processes, remove temporary folders)
    atexit.register(_exit_with_a_late_signal)
    main()


def _command_ended() -> None:
    """From here on (the command's result is out; Python's exit joins worker processes,
    runs exit handlers, collects Lava's processes), a Ctrl-C or SIGTERM does not
    interrupt that clean-up: it only sets the exit status (130 / 143), and a second one
    ends the process at once. A Ctrl-C there raised KeyboardInterrupt inside the exit:
    the process killed itself by SIGINT (-2) after its result (`profile` done within
    half a second of its Lava processes being up, in the signal tests; issue 27)."""
    if _exit["program"]:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, _late_signal)


def _late_signal(signum, frame) -> None:
    if _exit["signal"]:
        _exit_now()
    _exit["signal"] = signum


def _exit_with_a_late_signal() -> None:
    """The last exit handler: with a late signal, end with its status (skipping only
    the collection of what is left, which the exit handlers have ended already).
    Without, ignore SIGINT and SIGTERM from here: Python then stops handling signals
    (a handler of ours would be reset to the default) while it collects what is left
    and tears its modules down, where one killed the process (-2, -15) after its
    result; the command's own status stands."""
    if _exit["signal"]:
        logging.shutdown()
        _exit_now()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)


def _exit_now() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(128 + _exit["signal"])


def _interrupt_in(e: BaseException) -> BaseException | None:
    """The Ctrl-C (KeyboardInterrupt) or SIGTERM exit (SystemExit) that ``e`` was raised
    from or while handling, or None. A C extension whose import a Ctrl-C interrupts
    reports it as "ImportError: initialization failed" (matplotlib's ``_image``: a
    traceback and exit 1 for a Ctrl-C in a command's first seconds)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, KeyboardInterrupt) or (isinstance(e, SystemExit)
                                                and e.code == 128 + signal.SIGTERM):
            return e
        e = e.__cause__ or e.__context__
    return None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Hybrid SNN/ANN action recognition on compressed video, for simulated Loihi 2."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


main.add_command(doctor)
main.add_command(demo)
main.add_command(summary)
main.add_command(profile)
main.add_command(stm)
main.add_command(train)
main.add_command(pretrain)
main.add_command(evaluate)
main.add_command(predict)
main.add_command(explain)
main.add_command(synth)
main.add_command(inspect)
main.add_command(extract)
main.add_command(prepare)
main.add_command(deploy)
main.add_command(run)
main.add_command(map_cmd)
main.add_command(nir_cmd)
main.add_command(chip_cmd)
