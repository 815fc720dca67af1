"""The containers the daemon knows, by ID and by name: where every service looks a container up."""
from __future__ import annotations

import re

from pyd.daemon.containers.model import Container
from pyd.daemon.errors import BadParameter, NotFound


class ContainerStore:
    def __init__(self) -> None:
        self.by_id: dict[str, Container] = {}
        self.names: dict[str, str] = {}          # "/name" -> id

    def all(self) -> list[Container]:
        return list(self.by_id.values())

    def find(self, cid: str) -> Container | None:
        """Exact lookup by full ID."""
        return self.by_id.get(cid)

    def get(self, ref: str) -> Container:
        """Full ID, then name, then unique ID prefix: Docker's order."""
        if not ref:
            raise NotFound("No such container: ")
        c = self.by_id.get(ref)
        if c:
            return c
        cid = self.names.get(ref if ref.startswith("/") else "/" + ref)
        if cid:
            return self.by_id[cid]
        if re.fullmatch(r"[0-9a-f]+", ref):
            matches = [c for i, c in self.by_id.items() if i.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise BadParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")
