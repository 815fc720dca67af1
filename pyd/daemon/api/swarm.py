"""Swarm mode's endpoints, answered as a dockerd that is not part of a swarm: clients clean up with
`leave_swarm(force=True)` and list services or secrets without special cases. pyd does not join or
create a swarm."""
from __future__ import annotations

from typing import Any

from pyd.daemon.errors import BadParameter, NotImplementedFeature, Unavailable

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
                 "this node to swarm and try again.")
NOT_IN_A_SWARM = "This node is not part of a swarm"
CLUSTER_VOLUMES_ONLY = "volume update only valid for cluster volumes, but swarm is unavailable"
# the object kinds of swarm mode: GET (list), GET/DELETE {id}, POST create, POST {id}/update
OBJECTS = ("nodes", "services", "tasks", "secrets", "configs")


def _check_version(req: Any, kind: str) -> None:
    """An update names the object version it was read at; dockerd checks it before anything else."""
    value = req.arg("version") or ""
    if value.isdigit():
        return
    if kind in ("secret", "config"):
        raise BadParameter(f"invalid {kind} version")
    raise BadParameter(f"invalid {kind} version '{value}': strconv.ParseUint: parsing \"{value}\": invalid syntax")


def register(router: Any) -> None:
    async def not_a_manager(req: Any, **_: str) -> None:
        raise Unavailable(NOT_A_MANAGER)

    async def leave(req: Any) -> None:
        raise Unavailable(NOT_IN_A_SWARM)

    async def init_or_join(req: Any) -> None:
        raise NotImplementedFeature("pyd does not support swarm mode")

    def updater(kind: str):
        async def update(req: Any, **_: str) -> None:
            _check_version(req, kind)
            raise Unavailable(NOT_A_MANAGER)
        return update

    router.add("GET", "/swarm", not_a_manager)
    router.add("GET", "/swarm/unlockkey", not_a_manager)
    router.add("POST", "/swarm/unlock", not_a_manager)
    router.add("POST", "/swarm/leave", leave)
    router.add("POST", "/swarm/init", init_or_join)
    router.add("POST", "/swarm/join", init_or_join)
    router.add("POST", "/swarm/update", updater("swarm"))
    for objects in OBJECTS:
        router.add("GET", f"/{objects}", not_a_manager)
        router.add("GET", f"/{objects}/{{id}}", not_a_manager)
        if objects != "tasks":
            router.add("DELETE", f"/{objects}/{{id}}", not_a_manager)
            router.add("POST", f"/{objects}/create", not_a_manager)
            router.add("POST", f"/{objects}/{{id}}/update", updater(objects[:-1]))
    async def volume_update(req: Any, name: str) -> None:
        raise Unavailable(CLUSTER_VOLUMES_ONLY)   # only cluster volumes update, before any other check

    router.add("PUT", "/volumes/{name}", volume_update)
    router.add("GET", "/services/{id}/logs", not_a_manager)
    router.add("GET", "/tasks/{id}/logs", not_a_manager)
