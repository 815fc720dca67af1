"""`pyd update`: change a container's resource limits and restart policy."""
from __future__ import annotations

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

from pyd.client.commands.resource_flags import resource_flags, resources
from pyd.client.common import PROG, Cli
from pyd.client.flags import STRING, Flag, Options, Spec

SPECS: dict[str, Spec] = {
    "update": Spec("[OPTIONS] CONTAINER [CONTAINER...]", "Update configuration of one or more containers", [
        *resource_flags(), Flag("restart", "", STRING, help="Restart policy to apply when a container exits"),
    ], min_args=1, aliases=(f"{PROG} container update", f"{PROG} update")),
}


def cmd_update(cli: Cli, opts: Options, args: list[str]) -> int:
    from pyd.client.common import StatusError
    body: dict[str, Any] = resources(opts)
    if not body and not opts.given("restart"):
        raise StatusError(1, "you must provide one or more flags when using this command")
    if opts.restart:
        from pyd.client.commands.run_flags import parse_restart_policy
        try:
            body["RestartPolicy"] = parse_restart_policy(opts.restart)
        except ValueError as exc:
            raise StatusError(1, str(exc)) from None
    from pyd.client.common import for_each
    for_each(cli, args, lambda n: cli.client().request("POST", f"/containers/{n}/update", body=body))
    return 0
