"""The local terminal of interactive commands (run -it, exec -it, attach): raw mode that is restored on every
exit path, the terminal size sent at start and on SIGWINCH, and the detach keys typed on stdin.

Client side: imports only the stdlib (termios and signal lazily, at use).
"""
from __future__ import annotations

import os

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Callable

from pyd.formats.detachkeys import DEFAULT_DETACH_KEYS, DetachScanner, parse_detach_keys  # noqa: F401 (re-exported)
ESCAPE_MESSAGE = "read escape sequence"


def detach_keys_flag(value: str | None) -> bytes:
    """A --detach-keys flag (empty: docker's default) as bytes; a bad one ends the command with status 1."""
    from pyd.client.common import StatusError
    try:
        return parse_detach_keys(value or DEFAULT_DETACH_KEYS)
    except ValueError as exc:
        raise StatusError(1, str(exc)) from None


def isatty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_size(stream: Any) -> tuple[int, int] | None:
    """(rows, columns) of the terminal behind stream, or None."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return None
    return size.lines, size.columns


class RawTerminal:
    """Raw mode on a terminal for the duration of a `with` block. The saved settings come back when the block
    ends (return, exception, KeyboardInterrupt) and when SIGTERM, SIGHUP or SIGQUIT end the process."""

    SIGNALS = ("SIGTERM", "SIGHUP", "SIGQUIT")

    def __init__(self, stream: Any) -> None:
        self.fd = stream.fileno() if stream is not None and isatty(stream) else None
        self.saved: list | None = None
        self.previous: dict = {}

    def __enter__(self) -> "RawTerminal":
        if self.fd is None:
            return self
        import termios
        import tty
        self.saved = termios.tcgetattr(self.fd)
        self._catch_signals()
        tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()
        self._release_signals()

    def restore(self) -> None:
        if self.saved is None:
            return
        import termios
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        except termios.error:
            pass
        self.saved = None

    def _catch_signals(self) -> None:
        import signal
        import threading
        if threading.current_thread() is not threading.main_thread():
            return

        def die(signum: int, _frame: Any) -> None:
            self.restore()            # then end as the signal would have ended us
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        for name in self.SIGNALS:
            signum = getattr(signal, name)
            self.previous[signum] = signal.signal(signum, die)

    def _release_signals(self) -> None:
        import signal
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}


class SizeForwarder:
    """Send our terminal's size with send(rows, cols) now and at every SIGWINCH, until stop()."""

    def __init__(self, stream: Any, send: Callable[[int, int], None]) -> None:
        self.stream, self.send = stream, send
        self.previous: Callable[..., object] | int | None = None   # the SIGWINCH handler we replaced
        self.installed = False

    def start(self) -> "SizeForwarder":
        import signal
        import threading
        self._forward()
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGWINCH, lambda *_: self._forward())
            self.installed = True
        return self

    def _forward(self) -> None:
        size = terminal_size(self.stream)
        if size is None:
            return
        try:
            self.send(*size)
        except Exception:     # resizing is best effort, as in docker (the process may be gone)
            pass

    def stop(self) -> None:
        if self.installed:
            import signal
            signal.signal(signal.SIGWINCH, self.previous or signal.SIG_DFL)
            self.installed = False
