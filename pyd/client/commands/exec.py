"""`pyd exec`: run a command in a running container (docker's flow, over a hijacked connection)."""
from __future__ import annotations

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

from pyd.client import tty
from pyd.client.common import PROG, Cli, StatusError
from pyd.client.flags import BOOL, LIST, STRING, Flag, Options, Spec
from pyd.client.streams import Session


def _validate_env(raw: str) -> str:
    from pyd.client.commands.container import _validate_env as validate
    return validate(raw)


SPECS: dict[str, Spec] = {
    "exec": Spec("[OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container", [
        Flag("detach", "d", BOOL, help="Detached mode: run command in the background"),
        Flag("detach-keys", "", STRING, help="Override the key sequence for detaching a container"),
        Flag("env", "e", LIST, help="Set environment variables", validate=_validate_env),
        Flag("env-file", "", LIST, help="Read in a file of environment variables"),
        Flag("interactive", "i", BOOL, help="Keep STDIN open even if not attached"),
        Flag("privileged", "", BOOL, help="Give extended privileges to the command"),
        Flag("tty", "t", BOOL, help="Allocate a pseudo-TTY"),
        Flag("user", "u", STRING, help="Username or UID (format: \"<name|uid>[:<group|gid>]\")"),
        Flag("workdir", "w", STRING, help="Working directory inside the container"),
    ], min_args=2, interspersed=False, aliases=(f"{PROG} container exec", f"{PROG} exec")),
}


def cmd_exec(cli: Cli, opts: Options, args: list[str]) -> int:
    from pyd.client.commands.container import read_env_file
    name, cmd = args[0], args[1:]
    keys = tty.detach_keys_flag(opts.detach_keys)
    if opts.tty and opts.interactive and not opts.detach and not tty.isatty(cli.stdin):
        raise StatusError(1, "the input device is not a TTY")
    try:
        env = [line for path in opts.env_file for line in read_env_file(path)] + list(opts.env)
    except ValueError as exc:
        raise StatusError(125, str(exc)) from None
    config: dict[str, Any] = {
        "User": opts.user or "", "Privileged": opts.privileged, "Tty": opts.tty,
        "AttachStdin": opts.interactive and not opts.detach, "AttachStdout": not opts.detach,
        "AttachStderr": not opts.detach, "DetachKeys": opts.detach_keys or "", "Env": env,
        "WorkingDir": opts.workdir or "", "Cmd": cmd,
    }
    size = tty.terminal_size(cli.stdout) if opts.tty else None
    if size:
        config["ConsoleSize"] = list(size)
    exec_id = cli.client().request("POST", f"/containers/{name}/exec", body=config).json()["Id"]
    if opts.detach:
        cli.client().request("POST", f"/exec/{exec_id}/start", body={"Detach": True, "Tty": opts.tty})
        return 0
    start = {"Detach": False, "Tty": opts.tty}
    if size:
        start["ConsoleSize"] = list(size)
    conn = cli.new_client().hijack("POST", f"/exec/{exec_id}/start", body=start)
    session = Session(cli, conn, tty_mode=opts.tty, stdin=config["AttachStdin"], detach_keys=keys)
    session.run(resize=lambda h, w: cli.new_client().request(
        "POST", f"/exec/{exec_id}/resize", query={"h": str(h), "w": str(w)}))
    if session.detached:
        raise StatusError(1, tty.ESCAPE_MESSAGE)
    code = int(cli.client().request("GET", f"/exec/{exec_id}/json").json().get("ExitCode") or 0)
    if code:
        raise StatusError(code)
    return 0
