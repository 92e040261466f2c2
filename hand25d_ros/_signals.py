"""How the command-line tools stop: SIGTERM and SIGHUP as Ctrl-C."""
from __future__ import annotations

import signal


# the signal that asked the run to stop, once its handler ran: a KeyboardInterrupt raised inside
# a weakref callback or a __del__ (the import machinery runs both) is only printed as
# "Exception ignored", so the stop is kept here to be asked for again (raise_if_stop_was_lost)
_stop_asked_by: str | None = None


def raise_if_stop_was_lost() -> None:
    """Raise KeyboardInterrupt if a stop signal reached a handler of
    :func:`interrupt_on_termination` and the run went on: its KeyboardInterrupt was raised
    where Python ignores exceptions. (A Ctrl-C during the ONNX export once did that, and the
    file it should not have written was written; ``_files.write_replacing`` asks before it
    puts a file in place.)"""
    if _stop_asked_by is not None:
        raise KeyboardInterrupt(_stop_asked_by)


def interrupt_on_termination() -> None:
    """SIGTERM and SIGHUP (``timeout``, ``kill``, a closed terminal, a cancelled job) end a run
    as Ctrl-C does, so that its temporary outputs are removed, not left half-written, and the
    worker processes it started are ended with it (the trainers' render pools)."""
    def interrupt(signum, frame):
        name = _remember_stop(signum)
        # torch's DataLoader watches its workers through SIGCHLD and raises when one dies of a
        # signal: sent to the whole process group (timeout, systemd), SIGTERM ends them too, and
        # that RuntimeError replaced this interrupt (hand25d-train: a traceback and exit status 1)
        # (a Python no-op, not SIG_DFL: one already pending would then be reported as a race)
        if hasattr(signal, "SIGCHLD"):
            signal.signal(signal.SIGCHLD, lambda *_: None)
        raise KeyboardInterrupt(name)
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        # one the process was started ignoring stays ignored: under nohup a closed terminal's
        # SIGHUP stopped an hours-long training run
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _ctrl_c)


def _remember_stop(signum) -> str:
    global _stop_asked_by
    _stop_asked_by = signal.Signals(signum).name
    return _stop_asked_by


def _ctrl_c(signum, frame):
    # Python's own Ctrl-C handler, the stop remembered as the others' are
    _remember_stop(signum)
    raise KeyboardInterrupt
