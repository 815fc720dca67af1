"""/images/...: list, inspect, tag, remove, load, import (create?fromSrc), save."""
from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from pyd.api.util import check_filter_keys, filters_arg, spool_body
from pyd.container import parse_rfc3339
from pyd.errors import BadParameter, NotFound
from pyd.proto import Response

if TYPE_CHECKING:
    from pyd.daemon import Daemon

LIST_FILTERS = {"dangling", "label", "reference", "before", "since", "until"}


def register(router: Any, daemon: "Daemon") -> None:
    graph = daemon.graph
    tmp_dir = os.path.join(daemon.cfg.data_root, "tmp")

    def publish(action: str, image_id: str, name: str = "") -> None:
        daemon.events.publish("image", action, image_id if not name else name, {"name": name or image_id})

    async def list_(req) -> list:
        filters = filters_arg(req)
        check_filter_keys(filters, LIST_FILTERS)
        out = [image_summary(graph, img) for img in graph.images()]
        out = [e for e in out if _image_matches(e, filters, graph)]
        return sorted(out, key=lambda e: e["Created"], reverse=True)

    async def inspect(req, name: str) -> dict:
        return image_inspect(graph, graph.resolve_image(name))

    async def tag(req, name: str) -> Response:
        image = graph.resolve_image(name)
        repo = req.arg("repo") or ""
        if not repo:
            raise BadParameter("repository name must have at least one component")
        ref = f"{repo}:{req.arg('tag')}" if req.arg("tag") else repo
        await asyncio.to_thread(graph.tag, image.id, ref)
        publish("tag", image.id, ref)
        return Response(201, b"")

    async def remove(req, name: str) -> list:
        result = await asyncio.to_thread(graph.delete_image, name, req.arg_bool("force"),
                                         daemon.containers.image_in_use)
        for item in result:
            for key, action in (("Untagged", "untag"), ("Deleted", "delete")):
                if key in item:
                    publish(action, item[key])
        return result

    async def load(req) -> None:
        # quiet only changes progress output, which load does not produce
        path = await spool_body(req, tmp_dir)
        try:
            with open(path, "rb") as f:
                messages = await asyncio.to_thread(graph.load, f)
        finally:
            os.unlink(path)
        out = await req.stream(200, "application/json")
        for msg in messages:
            publish("load", msg.split(": ", 1)[-1])
            await out.write_json({"stream": msg + "\n"})
        await out.close()

    async def create(req) -> None:
        if req.arg("fromImage"):
            await pull(req)
            return
        if req.arg("fromSrc") != "-":
            raise BadParameter("fromSrc must be \"-\" (import from the request body); URLs are not supported")
        repo, tag_ = req.arg("repo") or "", req.arg("tag") or ""
        ref = (f"{repo}:{tag_}" if tag_ else repo) or None
        changes = req.query.get("changes", [])
        path = await spool_body(req, tmp_dir)
        try:
            with open(path, "rb") as f:
                image_id = await asyncio.to_thread(graph.import_tar, f, ref, changes, req.arg("message") or "")
        finally:
            os.unlink(path)
        publish("import", image_id)
        out = await req.stream(200, "application/json")
        await out.write_json({"status": image_id})
        await out.close()

    async def pull(req) -> None:
        ref = req.arg("fromImage") + (":" + req.arg("tag") if req.arg("tag") else "")
        raise NotFound(f"pull access denied for {req.arg('fromImage')}, repository does not exist or may require "
                       f"'docker login': pulling {ref} is not supported by this daemon yet")

    async def save(req, name: str | None = None) -> None:
        names = [name] if name else req.query.get("names", [])
        for n in names:
            graph.resolve_image(n)  # 404 before any byte is sent
        out = await req.stream(200, "application/x-tar")
        queue: asyncio.Queue = asyncio.Queue(maxsize=8)
        loop = asyncio.get_running_loop()

        def produce() -> None:
            try:
                for chunk in graph.save(names):
                    asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            finally:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

        producer = loop.run_in_executor(None, produce)
        while (chunk := await queue.get()) is not None:
            await out.write(chunk)
        await producer
        await out.close()

    router.add("GET", "/images/json", list_)
    router.add("POST", "/images/load", load)
    router.add("POST", "/images/create", create)
    router.add("GET", "/images/get", save)
    router.add("GET", "/images/{name:path}/json", inspect)
    router.add("GET", "/images/{name:path}/get", save)
    router.add("POST", "/images/{name:path}/tag", tag)
    router.add("DELETE", "/images/{name:path}", remove)


def _split_refs(refs: list[str]) -> tuple[list[str], list[str]]:
    tags = [r for r in refs if "@" not in r]
    digests = [r for r in refs if "@" in r]
    return tags, digests


def image_summary(graph: Any, img: Any) -> dict[str, Any]:
    tags, digests = _split_refs(graph.image_refs(img.id))
    return {
        "Id": img.id, "ParentId": "", "RepoTags": tags, "RepoDigests": digests,
        "Created": int(parse_rfc3339(img.created)), "Size": img.size, "SharedSize": -1,
        "Labels": (img.container_config().get("Labels") or {}), "Containers": -1,
    }


def image_inspect(graph: Any, img: Any) -> dict[str, Any]:
    tags, digests = _split_refs(graph.image_refs(img.id))
    cfg = img.config
    return {
        "Id": img.id, "RepoTags": tags, "RepoDigests": digests, "Parent": "", "Comment": cfg.get("comment", ""),
        "Created": img.created, "DockerVersion": cfg.get("docker_version", ""), "Author": cfg.get("author", ""),
        "Config": img.container_config(), "Architecture": cfg.get("architecture", "amd64"),
        "Variant": cfg.get("variant"), "Os": cfg.get("os", "linux"), "Size": img.size,
        "GraphDriver": {"Name": graph.driver_name, "Data": None}, "RootFS": cfg.get("rootfs", {"Type": "layers"}),
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


def _image_matches(entry: dict[str, Any], filters: dict[str, list[str]], graph: Any) -> bool:
    import fnmatch
    for key, values in filters.items():
        if not values:
            continue
        if key == "dangling":
            dangling = not entry["RepoTags"]
            if (values[0].lower() in ("true", "1")) != dangling:
                return False
        elif key == "label":
            labels = entry["Labels"]
            for v in values:
                k, eq, val = v.partition("=")
                if k not in labels or (eq and labels[k] != val):
                    return False
        elif key == "reference":
            names = entry["RepoTags"] + [t.rsplit(":", 1)[0] for t in entry["RepoTags"]]
            if not any(fnmatch.fnmatchcase(n, v) for n in names for v in values):
                return False
        elif key in ("before", "since"):
            ref_created = int(parse_rfc3339(graph.resolve_image(values[0]).created))
            if key == "before" and not entry["Created"] < ref_created:
                return False
            if key == "since" and not entry["Created"] > ref_created:
                return False
    return True
