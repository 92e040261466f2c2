"""How the command-line tools stop: SIGTERM and SIGHUP as Ctrl-C."""
from __future__ import annotations

import signal


def interrupt_on_termination() -> None:
    """SIGTERM and SIGHUP (``timeout``, ``kill``, a closed terminal, a cancelled job) end a run
    as Ctrl-C does, so that its temporary outputs are removed, not left half-written, and the
    worker processes it started are ended with it (the trainers' render pools)."""
    def interrupt(signum, frame):
        # torch's DataLoader watches its workers through SIGCHLD and raises when one dies of a
        # signal: sent to the whole process group (timeout, systemd), SIGTERM ends them too, and
        # that RuntimeError replaced this interrupt (hand25d-train: a traceback and exit status 1)
        # (a Python no-op, not SIG_DFL: one already pending would then be reported as a race)
        if hasattr(signal, "SIGCHLD"):
            signal.signal(signal.SIGCHLD, lambda *_: None)
        raise KeyboardInterrupt(signal.Signals(signum).name)
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        # one the process was started ignoring stays ignored: under nohup a closed terminal's
        # SIGHUP stopped an hours-long training run
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, interrupt)
