"""`pyd attach`: connect our stdin, stdout and stderr to a running container's (docker's flow, over a
hijacked connection)."""
from __future__ import annotations

from pyd.client import tty
from pyd.client.common import PROG, Cli, StatusError
from pyd.client.flags import BOOL, STRING, Flag, Options, Spec
from pyd.client.streams import Session

SPECS: dict[str, Spec] = {
    "attach": Spec("[OPTIONS] CONTAINER", "Attach local standard input, output, and error streams to a running "
                   "container", [
        Flag("detach-keys", "", STRING, help="Override the key sequence for detaching a container"),
        Flag("no-stdin", "", BOOL, help="Do not attach STDIN"),
        Flag("sig-proxy", "", BOOL, True, help="Proxy all received signals to the process"),
    ], min_args=1, max_args=1, aliases=(f"{PROG} container attach", f"{PROG} attach")),
}


def cmd_attach(cli: Cli, opts: Options, args: list[str]) -> int:
    name = args[0]
    keys = tty.detach_keys_flag(opts.detach_keys)
    info = cli.client().request("GET", f"/containers/{name}/json").json()
    state, config = info.get("State") or {}, info.get("Config") or {}
    if not state.get("Running"):
        raise StatusError(1, "You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise StatusError(1, "You cannot attach to a paused container, unpause it first")
    is_tty = bool(config.get("Tty"))
    stdin = bool(config.get("OpenStdin")) and not opts.no_stdin
    if is_tty and stdin and not tty.isatty(cli.stdin):
        raise StatusError(1, "the input device is not a TTY")
    cid = info.get("Id", name)
    query = {"stream": "1", "stdout": "1", "stderr": "1"}
    if stdin:
        query["stdin"] = "1"
    if opts.detach_keys:
        query["detachKeys"] = opts.detach_keys
    wait_resp = cli.new_client().request("POST", f"/containers/{cid}/wait")
    conn = cli.new_client().hijack("POST", f"/containers/{cid}/attach", query=query)
    restore = _proxy_signals(cli, cid) if opts.sig_proxy and not is_tty else None
    session = Session(cli, conn, tty_mode=is_tty, stdin=stdin, detach_keys=keys)
    try:
        session.run(resize=lambda h, w: cli.new_client().request(
            "POST", f"/containers/{cid}/resize", query={"h": str(h), "w": str(w)}))
    finally:
        if restore:
            restore()
    if session.detached:
        raise StatusError(1, tty.ESCAPE_MESSAGE)
    try:
        code = int((wait_resp.json() or {}).get("StatusCode", 0))
    except Exception:        # the daemon went away while we waited
        return 0
    if code:
        raise StatusError(code)
    return 0


def _proxy_signals(cli: Cli, cid: str):
    from pyd.client.commands.container import AttachSession
    return AttachSession(cli, cid, False, False, True, True)._proxy_signals()
