"""pyd's entry point: global flags, then daemon mode (`pyd daemon ...`) or a client command.

Start-up cost matters (every `pyd` command pays it), so this module imports almost nothing: the client
command's module is imported by name, and asyncio only ever by the daemon.
"""
from __future__ import annotations

import os
import sys

from pyd.client.flags import BOOL, LIST, STRING, Flag, FlagError, Spec, help_text, parse

GLOBAL_SPEC = Spec(
    usage="[OPTIONS] COMMAND [ARG...]",
    summary="A self-sufficient runtime for containers",
    interspersed=False,
    flags=[
        Flag("debug", "D", BOOL, help="Enable debug mode"),
        Flag("host", "H", LIST, help="Daemon socket to connect to"),
        Flag("log-level", "l", STRING, "info",
             help='Set the logging level ("debug", "info", "warn", "error", "fatal")'),
        Flag("tls", "", BOOL, help="Use TLS; implied by --tlsverify"),
        Flag("tlscacert", "", STRING, help="Trust certs signed only by this CA"),
        Flag("tlscert", "", STRING, help="Path to TLS certificate file"),
        Flag("tlskey", "", STRING, help="Path to TLS key file"),
        Flag("tlsverify", "", BOOL, help="Use TLS and verify the remote"),
        Flag("version", "v", BOOL, help="Print version information and quit"),
    ],
)


def _global_help() -> str:
    text = help_text(GLOBAL_SPEC, "pyd")
    return text.split("Options:\n", 1)[1]


def _cert_path(given: str | None, name: str) -> str | None:
    """An explicit --tls* path, else $PYD_CERT_PATH/NAME or ~/.pyd/NAME when that file exists."""
    if given:
        return given
    base = os.environ.get("PYD_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".pyd")
    path = os.path.join(base, name)
    return path if os.path.exists(path) else None


def _make_cli(opts):
    from pyd.client.common import Cli, StatusError, TLSOptions, normalize_host
    hosts = opts.host or ([os.environ["PYD_HOST"]] if os.environ.get("PYD_HOST") else [])
    if len(hosts) > 1:
        raise StatusError(1, "Specify only one -H")
    tls = TLSOptions(enabled=opts.tls or opts.tlsverify, verify=opts.tlsverify,
                     ca=_cert_path(opts.tlscacert, "ca.pem"), cert=_cert_path(opts.tlscert, "cert.pem"),
                     key=_cert_path(opts.tlskey, "key.pem"))
    return Cli(host=normalize_host(hosts[0] if hosts else ""), tls=tls,
               debug=opts.debug, log_level="debug" if opts.debug else opts.log_level)


def main(argv: list[str] | None = None) -> int:
    """`pyd [global flags] COMMAND ...`; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, words, help_requested = parse(GLOBAL_SPEC, argv)
    except FlagError as exc:
        sys.stderr.write(f"{exc}\n\nUsage:  pyd [OPTIONS] COMMAND [ARG...]\n\n"
                         "Run 'pyd --help' for more information\n")
        return 125
    if opts.version:
        from pyd import __version__
        sys.stdout.write(f"pyd version {__version__}\n")
        return 0
    if words and words[0] == "daemon":
        # the daemon takes the global flags too (-H may repeat there): hand them on as given
        global_tokens = argv[:len(argv) - len(words)]
        from pyd.daemon.main import main as daemon_main
        return daemon_main(global_tokens + words[1:])
    from pyd import client as registry
    if help_requested or not words or words[0] == "help":
        if words and words[0] == "help" and len(words) > 1:
            return main(argv[:len(argv) - len(words)] + words[1:] + ["--help"])
        sys.stdout.write(registry.root_help(_global_help()))
        return 0
    from pyd.client.common import StatusError
    try:
        cli = _make_cli(opts)
    except StatusError as exc:
        sys.stderr.write(exc.message + "\n")
        return exc.status
    status = registry.run(cli, words)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    return status


if __name__ == "__main__":
    sys.exit(main())
