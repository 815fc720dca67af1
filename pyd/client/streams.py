"""Copying a hijacked stream both ways (run, start -a, exec, attach): stdin to the connection with the
detach keys watched, the connection (stdcopy frames unless tty) to stdout/stderr."""
from __future__ import annotations

import os

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

from pyd.client import tty
from pyd.client.common import Cli


class Session:
    """Copy our stdin to the connection and the connection to stdout/stderr (stdcopy frames unless tty) until
    the daemon closes it or the detach keys are typed. With a tty on a terminal: raw mode and size updates."""

    def __init__(self, cli: Cli, conn: Any, tty_mode: bool, stdin: bool, detach_keys: bytes) -> None:
        self.cli, self.conn, self.tty, self.stdin = cli, conn, tty_mode, stdin
        self.keys = detach_keys
        self.detached = False
        self.error: BaseException | None = None

    def run(self, resize) -> None:
        """exec and attach: raw mode and size updates around copy(); the connection is closed after."""
        raw_on = self.cli.stdin if self.tty and self.stdin else None
        forwarder = None
        try:
            with tty.RawTerminal(raw_on):
                if self.tty and tty.isatty(self.cli.stdout):
                    forwarder = tty.SizeForwarder(self.cli.stdout, resize).start()
                self.copy()
        finally:
            if forwarder:
                forwarder.stop()
            try:
                self.conn.close()
            except OSError:
                pass

    def copy(self) -> None:
        """Copy both ways on threads until the daemon closes the stream or the detach keys are typed."""
        import threading
        if self.stdin:
            threading.Thread(target=self._copy_stdin, name="stdin", daemon=True).start()
        reader = threading.Thread(target=self._copy_output, name="output", daemon=True)
        reader.start()
        while reader.is_alive():
            reader.join(0.5)      # short joins keep the main thread responsive to signals
        if self.error is not None and not self.detached:
            raise self.error

    def _copy_stdin(self) -> None:
        fd = self.cli.stdin.fileno()
        scanner = tty.DetachScanner(self.keys) if self.tty else None
        try:
            while True:
                data = os.read(fd, 32768)
                if not data:
                    break
                if scanner is not None:
                    data, detached = scanner.feed(data)
                    if data:
                        self.conn.sendall(data)
                    if detached:
                        self.detached = True
                        import socket
                        self.conn.sock.shutdown(socket.SHUT_RDWR)     # ends the output copy
                        return
                    continue
                self.conn.sendall(data)
            self.conn.shutdown_write()
        except OSError:
            pass

    def _copy_output(self) -> None:
        from pyd.formats.stdcopy import StdcopyDemuxer
        demux = None if self.tty else StdcopyDemuxer()
        try:
            while True:
                data = self.conn.recv(1 << 18)   # bulk output: fewer, larger reads
                if not data:
                    return
                if demux is None:
                    self.cli.out_bytes(data)
                    continue
                for stream, chunk in demux.feed(data):
                    (self.cli.err_bytes if stream == 2 else self.cli.out_bytes)(chunk)
        except OSError as exc:
            if not isinstance(exc, BrokenPipeError):
                self.error = exc
