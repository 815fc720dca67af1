"""pyd's client: a docker-compatible command line over the Engine API.

A command NAME is the function `cmd_NAME(cli, opts, args)` of one module per command group under
pyd/client/commands/, with its flags described in that module's `SPECS[NAME]`. This registry maps names to
modules without importing them, so `pyd ps` imports only what ps needs. The rest of pyd/client/ is what the
commands share: the Cli context and errors (common), flag parsing (flags), output (formatting, gotemplate)
and the terminal and hijacked streams (tty, streams).
"""
from __future__ import annotations

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from pyd.client.common import Cli

# top-level command -> module under pyd/client/commands/ (insertion order is the order of `pyd --help`)
COMMANDS: dict[str, str] = {
    "run": "container", "create": "container", "start": "container", "ps": "container",
    "logs": "container", "stop": "container", "kill": "container", "rm": "container", "wait": "container",
    "restart": "container", "rename": "container", "container_prune": "container",
    "update": "update",
    "inspect": "system", "exec": "exec", "attach": "attach",
    "images": "image", "import": "image", "load": "image", "save": "image", "tag": "image", "rmi": "image",
    "pull": "image", "push": "image", "history": "image", "commit": "image", "login": "image", "logout": "image",
    "image_prune": "image",
    "version": "system", "info": "system", "events": "system",
    "port": "network", "network_create": "network", "network_ls": "network", "network_inspect": "network",
    "network_rm": "network", "network_connect": "network", "network_disconnect": "network",
    "network_prune": "network",
    "cp": "cp", "export": "cp",
    "volume_create": "volume", "volume_ls": "volume", "volume_rm": "volume", "volume_prune": "volume",
    "build": "build",
    "pause": "processes", "unpause": "processes", "top": "processes", "stats": "processes",
}
COMMON = ("run", "ps", "images", "version", "info")

# management commands: `pyd container ls` runs `ps`; a tuple adds leading arguments
GROUPS: dict[str, tuple[str, dict[str, str | tuple[str, list[str]]]]] = {
    "container": ("Manage containers", {
        "create": "create", "inspect": ("inspect", ["--type", "container"]), "kill": "kill", "logs": "logs",
        "ls": "ps", "list": "ps", "ps": "ps", "rm": "rm", "remove": "rm", "run": "run", "start": "start",
        "stop": "stop", "wait": "wait", "commit": "commit", "exec": "exec", "attach": "attach",
        "cp": "cp", "export": "export", "restart": "restart", "rename": "rename", "prune": "container_prune",
        "update": "update", "port": "port",
        "pause": "pause", "unpause": "unpause", "top": "top", "stats": "stats",
    }),
    "image": ("Manage images", {
        "import": "import", "inspect": ("inspect", ["--type", "image"]), "load": "load", "ls": "images",
        "list": "images", "rm": "rmi", "remove": "rmi", "save": "save", "tag": "tag",
        "pull": "pull", "push": "push", "history": "history", "prune": "image_prune", "build": "build",
    }),
    "network": ("Manage networks", {
        "create": "network_create", "ls": "network_ls", "list": "network_ls", "inspect": "network_inspect",
        "rm": "network_rm", "remove": "network_rm", "connect": "network_connect",
        "disconnect": "network_disconnect", "prune": "network_prune",
    }),
    "volume": ("Manage volumes", {
        "create": "volume_create", "ls": "volume_ls", "list": "volume_ls", "rm": "volume_rm",
        "remove": "volume_rm", "prune": "volume_prune", "inspect": ("inspect", ["--type", "volume"]),
    }),
    "system": ("Manage pyd", {"events": "events", "info": "info"}),
}
_GROUP_HIDDEN = {"list", "ps", "remove"}     # aliases docker does not list in the group's help


def run(cli: "Cli", words: list[str]) -> int:
    """Run the command named by words[0] (and words[1] for a management command)."""
    from pyd.client.common import PROG
    name, rest = words[0], words[1:]
    if name in GROUPS:
        return _run_group(cli, name, rest)
    if name not in COMMANDS:
        cli.err(f"{PROG}: unknown command: {PROG} {name}\n\nRun '{PROG} --help' for more information\n")
        return 1
    return run_named(cli, f"{PROG} {name}", name, rest)


def _run_group(cli: "Cli", group: str, rest: list[str]) -> int:
    from pyd.client.common import PROG
    path = f"{PROG} {group}"
    if not rest or rest[0] in ("--help", "-h"):
        text = group_help(group)
        (cli.out if rest else cli.err)(text)
        return 0
    sub = GROUPS[group][1].get(rest[0])
    if sub is None:
        if rest[0].startswith("-"):
            cli.err(f"unknown flag: {rest[0]}\n\nUsage:  {path} COMMAND\n\nRun '{path} --help' for more information\n")
            return 125
        cli.err(f"{PROG}: unknown command: {path} {rest[0]}\n\nUsage:  {path}\n\n"
                f"Run '{path} --help' for more information\n")
        return 1
    name, preset = (sub, []) if isinstance(sub, str) else sub
    return run_named(cli, f"{path} {rest[0]}", name, preset + rest[1:])


def load_module(name: str):
    import importlib
    return importlib.import_module("pyd.client.commands." + COMMANDS[name])


def run_named(cli: "Cli", path: str, name: str, argv: list[str]) -> int:
    """Parse the command's flags and call cmd_<name>; turn errors into docker's messages and codes."""
    from pyd.client import flags
    from pyd.client.common import PROG, StatusError, api_error_message
    module = load_module(name)
    spec = module.SPECS[name]
    usage = f"Usage:  {path} {spec.usage}".rstrip()
    try:
        opts, args, help_requested = flags.parse(spec, argv)
        if help_requested:
            cli.out(flags.help_text(spec, path))
            return 0
        flags.check_args(spec, path, args)
    except flags.FlagError as exc:
        cli.err(f"{exc}\n\n{usage}\n\nRun '{path} --help' for more information\n")
        return 125
    except flags.ArgCountError as exc:
        cli.err(f"{PROG}: {exc}\n\n{usage}\n\n{exc.hint} '{path} --help' for more information\n")
        return 1
    cli.command_path = path
    try:
        return getattr(module, "cmd_" + name)(cli, opts, args) or 0
    except StatusError as exc:
        if exc.message:
            cli.err(exc.message.rstrip("\n") + "\n")
        return exc.status
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:   # the API's errors; anything else is a bug and keeps its traceback
        from pyd.http.errors import IncompleteMessage
        if isinstance(exc, IncompleteMessage):   # the daemon went away mid-response: the docker CLI's words
            cli.err("unexpected EOF\n")
            return 1
        if not _is_proto_error(exc):
            raise
        cli.err(api_error_message(exc) + "\n")
        return 1


def _is_proto_error(exc: BaseException) -> bool:
    from pyd.client.api import APIError, DaemonUnreachable
    return isinstance(exc, (APIError, DaemonUnreachable))


def group_help(group: str) -> str:
    from pyd.client.common import PROG
    summary, subs = GROUPS[group]
    lines = [f"Usage:  {PROG} {group} COMMAND", "", summary, "", "Commands:"]
    for sub, target in sorted(subs.items()):
        if sub in _GROUP_HIDDEN:
            continue
        name = target if isinstance(target, str) else target[0]
        lines.append(f"  {sub:<11} {_summary(name)}")
    lines += ["", f"Run '{PROG} {group} COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines)


def _summary(name: str) -> str:
    return load_module(name).SPECS[name].summary


def root_help(global_flags_help: str) -> str:
    from pyd.client.common import PROG
    lines = [f"Usage:  {PROG} [OPTIONS] COMMAND", "", "A self-sufficient runtime for containers", "",
             "Common Commands:"]
    lines += [f"  {n:<11} {_summary(n)}" for n in COMMON]
    lines += ["", "Management Commands:"]
    lines += [f"  {g:<11} {GROUPS[g][0]}" for g in GROUPS]
    lines += ["", "Commands:"]
    lines += [f"  {n:<11} {_summary(n)}" for n in sorted(COMMANDS) if n not in COMMON and "_" not in n]
    lines += ["  daemon      Start the pyd daemon", "", "Global Options:", global_flags_help.rstrip("\n"), "",
              f"Run '{PROG} COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines)
