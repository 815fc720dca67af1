"""The daemon's event bus: Docker's /events messages, a bounded history for `since`, live subscribers."""
from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, Iterable

HISTORY = 1024  # events kept for `since` queries; Docker keeps 256 in memory


class EventBus:
    def __init__(self) -> None:
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY)
        self.subscribers: set[asyncio.Queue] = set()

    def publish(self, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None) -> None:
        now = time.time_ns()
        event: dict[str, Any] = {
            "Type": type_, "Action": action,
            "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
            "scope": "local", "time": now // 1_000_000_000, "timeNano": now,
        }
        if type_ in ("container", "image"):  # the deprecated top-level fields old clients read
            event["status"], event["id"] = action, actor_id
            if type_ == "container" and attributes and "image" in attributes:
                event["from"] = attributes["image"]
        self.history.append(event)
        for queue in self.subscribers:
            queue.put_nowait(event)

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.subscribers.discard(queue)

    def since(self, since_ns: int) -> Iterable[dict[str, Any]]:
        return [e for e in self.history if e["timeNano"] >= since_ns]


def matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Docker's event filters: type, event/action, container, image, label, and the resource keys."""
    actor = event["Actor"]
    attrs = actor["Attributes"]
    for key, values in filters.items():
        if not values:
            continue
        if key == "type":
            ok = event["Type"] in values
        elif key in ("event", "action"):
            ok = any(event["Action"] == v or event["Action"].split(":")[0] == v for v in values)
        elif key in ("container", "volume", "network", "daemon"):
            ok = event["Type"] == key and any(
                actor["ID"].startswith(v) or attrs.get("name") == v for v in values)
        elif key == "image":
            ok = any(attrs.get("image") == v or actor["ID"] == v or attrs.get("name") == v
                     or actor["ID"].startswith(v) for v in values)
        elif key == "label":
            ok = any(_label_matches(attrs, v) for v in values)
        else:
            ok = True
        if not ok:
            return False
    return True


def _label_matches(attrs: dict[str, str], expr: str) -> bool:
    key, eq, value = expr.partition("=")
    return key in attrs and (not eq or attrs[key] == value)
