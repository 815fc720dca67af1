"""Image operations behind /images, /commit, /auth and /distribution: tag and removal with their events,
load and import, pull and push, history, prune, commit, save. The route module parses and shapes; the
work and its events are here."""
from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, AsyncIterator, Protocol

from pyd.formats import rfc3339
from pyd.formats.dockerignore import go_match
from pyd.daemon.errors import BadParameter, Conflict, NotFound

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container
    from pyd.daemon.events import EventBus
    from pyd.daemon.images.commit import Freezer
    from pyd.daemon.images.pull import PullService
    from pyd.daemon.images.registry import AuthConfig, Emit
    from pyd.daemon.storage.graph import Graph, Image
    from pyd.formats.reference import Reference


class ContainerImages(Protocol):
    """What image operations ask about containers: which one uses an image (rmi, prune) and, for commit,
    the container itself."""
    def get(self, ref: str) -> Container: ...
    def image_in_use(self, image_id: str) -> str | None: ...
    def image_running(self, image_id: str) -> str | None: ...


class ImageService:
    def __init__(self, graph: Graph, pulls: PullService, events: EventBus, containers: ContainerImages,
                 freezer: Freezer) -> None:
        self.graph = graph
        self.pulls = pulls
        self.events = events
        self.containers = containers
        self.freezer = freezer

    def publish(self, action: str, image_id: str, name: str = "") -> None:
        self.events.publish("image", action, image_id if not name else name, {"name": name or image_id})

    def _publish_records(self, records: list[dict[str, str]]) -> None:
        for item in records:
            for key, action in (("Untagged", "untag"), ("Deleted", "delete")):
                if key in item:
                    self.publish(action, item[key])

    # ------------------------------------------------------------ list, history
    def summaries(self, filters: dict[str, list[str]], show_all: bool) -> list[dict[str, Any]]:
        """GET /images/json: newest first; intermediate images only with show_all."""
        graph = self.graph
        out = [image_summary(graph, img) for img in graph.images()]
        if not show_all:   # dockerd hides intermediate images: untagged, with children (builds)
            out = [e for e in out if e["RepoTags"] or e["RepoDigests"] or not graph.children(e["Id"])]
        out = [e for e in out if self._matches(e, filters)]
        if filters.get("reference"):   # dockerd shows only the references that matched
            for e in out:
                e["RepoTags"] = [t for t in e["RepoTags"] if _ref_matches(t, filters["reference"])]
                e["RepoDigests"] = [d for d in e["RepoDigests"] if _ref_matches(d, filters["reference"])]
        return sorted(out, key=lambda e: e["Created"], reverse=True)

    def _matches(self, entry: dict[str, Any], filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "dangling":
                dangling = not entry["RepoTags"] and not entry["RepoDigests"]   # dockerd: no reference at all
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
                if not any(go_match(v, n) for n in names for v in values):
                    return False
            elif key in ("before", "since"):
                # with the fraction, as dockerd compares them (the list shows whole seconds)
                ref_created = rfc3339.parse(self.graph.resolve_image(values[0]).created)
                img = self.graph.find_image(entry["Id"])
                created = rfc3339.parse(img.created) if img else entry["Created"]
                if key == "before" and not created < ref_created:
                    return False
                if key == "since" and not created > ref_created:
                    return False
        return True

    def history(self, name: str) -> list[dict[str, Any]]:
        """Docker's history: newest first, one row per history entry; layer sizes on non-empty entries."""
        graph = self.graph
        img = graph.resolve_image(name)
        chains = img.chain_ids()
        sizes = [graph.layer(c).size for c in chains]
        entries = list(img.config.get("history") or [])
        if not entries:
            entries = [{"created": img.created, "created_by": ""} for _ in chains] or [{"created": img.created}]
        rows, layer_i = [], 0
        for h in entries:
            size = 0
            if not h.get("empty_layer") and layer_i < len(sizes):
                size = sizes[layer_i]
                layer_i += 1
            rows.append({"Id": "<missing>", "Created": int(rfc3339.parse(h.get("created") or img.created or
                                                                         "1970-01-01T00:00:00Z")),
                         "CreatedBy": h.get("created_by", ""), "Tags": None, "Size": size,
                         "Comment": h.get("comment", "")})
        rows.reverse()
        tags = [r for r in graph.image_refs(img.id) if "@" not in r]
        rows[0]["Id"], rows[0]["Tags"] = img.id, tags or None
        parent = graph.find_image(img.parent) if img.parent else None
        i = 1
        while parent is not None and i < len(rows):   # rows made by an ancestor image carry its ID
            own = len(parent.config.get("history") or []) or 1
            idx = len(rows) - own
            if 0 <= idx < len(rows):
                rows[idx]["Id"] = parent.id
                rows[idx]["Tags"] = [r for r in graph.image_refs(parent.id) if "@" not in r] or None
            parent = graph.find_image(parent.parent) if parent.parent else None
            i += 1
        return rows

    # ------------------------------------------------------------ tag, remove, prune
    async def tag(self, name: str, ref: str) -> None:
        image = self.graph.resolve_image(name)
        await asyncio.to_thread(self.graph.tag, image.id, ref)
        self.publish("tag", image.id, ref)

    async def remove(self, name: str, force: bool) -> list[dict[str, str]]:
        result = await asyncio.to_thread(self.graph.delete_image, name, force, self.containers.image_in_use,
                                         self.containers.image_running)
        self._publish_records(result)
        return result

    async def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        result = await asyncio.to_thread(self._prune, filters)
        self._publish_records(result["ImagesDeleted"] or [])
        self.events.publish("image", "prune", "", {"reclaimed": str(result["SpaceReclaimed"])})
        return result

    def _prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        """Dangling images (or, with dangling=false, every unused image), filtered. In a worker thread."""
        from pyd.daemon.api.util import until_filter
        graph, in_use = self.graph, self.containers.image_in_use
        dangling_only = True
        if filters.get("dangling"):
            v = filters["dangling"][0].lower()
            if v not in ("true", "false", "1", "0"):
                raise BadParameter(f"invalid filter 'dangling={filters['dangling'][0]}'")
            dangling_only = v in ("true", "1")
        until = min((until_filter(u) for u in filters.get("until", [])), default=None)
        sizes = {}
        deleted: list[dict] = []
        for img in sorted(graph.images(), key=lambda i: i.created, reverse=True):
            if graph.find_image(img.id) is None:
                continue   # went with an earlier image
            if dangling_only and graph.image_refs(img.id):
                continue
            if until is not None and rfc3339.parse(img.created or "1970-01-01T00:00:00Z") >= until:
                continue
            labels = img.container_config().get("Labels") or {}
            if not _labels_match(labels, filters.get("label", []), False) or \
                    not _labels_match(labels, filters.get("label!", []), True):
                continue
            if in_use(img.id) or graph.children(img.id):
                continue
            for c in img.chain_ids():
                if graph.has_layer(c):
                    sizes[c] = graph.layer(c).size
            try:
                records = graph.delete_image(img.id, force=True, in_use=in_use)
            except (Conflict, NotFound):
                continue
            deleted.extend(records)
        reclaimed = sum(sizes.get(r["Deleted"], 0) for r in deleted if "Deleted" in r)
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # ------------------------------------------------------------ load, import, save
    async def load(self, path: str) -> list[str]:
        """A docker-archive or OCI layout (a spooled upload); Docker's "Loaded image: ..." lines."""
        with open(path, "rb") as f:
            messages = await asyncio.to_thread(self.graph.load, f)
        for msg in messages:
            self.publish("load", msg.split(": ", 1)[-1])
        return messages

    async def import_tar(self, path: str, ref: str | None, changes: list[str], message: str) -> str:
        with open(path, "rb") as f:
            image_id = await asyncio.to_thread(self.graph.import_tar, f, ref, changes, message)
        self.publish("import", image_id)
        return image_id

    def check_saveable(self, names: list[str]) -> None:
        for n in names:
            self.graph.resolve_image(n)   # 404 before any byte is sent

    async def save(self, names: list[str]) -> AsyncIterator[bytes]:
        """The tar of the images, made in a worker thread a bounded queue ahead of the reader."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
        loop = asyncio.get_running_loop()

        def produce() -> None:
            try:
                for chunk in self.graph.save(names):
                    asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            finally:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

        producer = loop.run_in_executor(None, produce)
        while (chunk := await queue.get()) is not None:
            yield chunk
        await producer

    # ------------------------------------------------------------ registry
    async def pull(self, ref: Reference, auth: AuthConfig, emit: Emit, platform: str = "") -> None:
        await self.pulls.pull(ref, auth, emit, platform)
        self.publish("pull", str(ref), ref.familiar())

    def push_tags(self, ref: Reference, tag: str) -> list[Reference]:
        """The references a push sends: the tag, or without one every tag of the repository
        (docker push --all-tags). 404 before the stream starts."""
        if tag:
            tags = [ref.with_tag(tag)]
        else:
            tags = [r for r in self.graph.references() if r.name == ref.name and r.tag]
        if not tags:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name()}")
        for t in tags:
            self.graph.resolve_image(str(t))
        return tags

    async def push(self, ref: Reference, tags: list[Reference], auth: AuthConfig, emit: Emit) -> None:
        from pyd.daemon.images import registry
        settings = self.pulls.settings
        async with self.pulls.session(ref.domain, auth) as session:
            repo = ref.name if ref.domain != "docker.io" else "docker.io/" + ref.path
            await emit({"status": f"The push refers to repository [{repo}]"})
            for t in tags:
                await registry.Pusher(session, self.graph, self.pulls.meta(), emit, settings.tmp_dir,
                                      settings.max_concurrent_uploads, settings.upload_chunk_size).push(t)
                self.publish("push", str(t), t.familiar())

    async def login(self, creds: AuthConfig) -> None:
        """POST /auth: the credentials work against the registry they name."""
        server = creds.server or "https://index.docker.io/v1/"
        domain = server.split("://", 1)[-1].split("/", 1)[0]
        if domain in ("index.docker.io", "registry-1.docker.io"):
            domain = "docker.io"
        async with self.pulls.session(domain, creds) as session:
            await session.check_login()

    async def distribution(self, ref: Reference, auth: AuthConfig) -> dict[str, Any]:
        """GET /distribution/{name}/json: the manifest's descriptor and the platforms it offers."""
        from pyd.daemon.images import registry
        async with self.pulls.session(ref.domain, auth) as session:
            puller = registry.Puller(session, self.graph, self.pulls.meta(), _discard, registry.PullOptions(host=self.graph.platform))
            body, mt, digest = await puller.get_manifest(ref, ref.digest or ref.tag or "latest")
        doc = json.loads(body)
        platforms = [m.get("platform") for m in doc.get("manifests") or [] if m.get("platform")]
        if not platforms:
            platforms = [{"architecture": "amd64", "os": "linux"}]
        return {"Descriptor": {"mediaType": mt, "digest": digest, "size": len(body)}, "Platforms": platforms}

    # ------------------------------------------------------------ commit
    def container(self, ref: str) -> Container:
        """The container a commit reads (404 before the request body is looked at)."""
        return self.containers.get(ref)

    async def commit(self, c: Container, ref: Reference | None, changes: list[str], comment: str,
                     author: str, overrides: dict[str, Any] | None, pause: bool) -> str:
        """docker commit: the container's changes as a new image (frozen meanwhile unless pause is false),
        tagged ref when given."""
        from pyd.daemon.images.commit import commit_container, frozen

        def run() -> str:
            with frozen(self.freezer if pause else None, c):
                return commit_container(self.graph, c, changes=changes, comment=comment, author=author,
                                        overrides=overrides)
        image_id = await asyncio.to_thread(run)
        if ref is not None:
            await asyncio.to_thread(self.graph.tag, image_id, str(ref))
        self.events.publish("container", "commit", c.ID, {"comment": comment, "imageID": image_id,
                                                         "imageRef": ref.familiar() if ref else ""})
        return image_id


def split_refs(refs: list[str]) -> tuple[list[str], list[str]]:
    """(tags, digests) of an image's references."""
    tags = [r for r in refs if "@" not in r]
    digests = [r for r in refs if "@" in r]
    return tags, digests


def image_summary(graph: Graph, img: Image) -> dict[str, Any]:
    tags, digests = split_refs(graph.image_refs(img.id))
    return {
        "Id": img.id, "ParentId": img.parent or "", "RepoTags": tags, "RepoDigests": digests,
        "Created": int(rfc3339.parse(img.created)), "Size": img.size, "SharedSize": -1,
        "Labels": (img.container_config().get("Labels") or {}), "Containers": -1,
    }


def _ref_matches(ref: str, patterns: list[str]) -> bool:
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    bare = name.rsplit(":", 1)[0] if ":" in last else name
    return any(go_match(p, n) for n in (ref, name, bare) for p in patterns)


def _labels_match(labels: dict[str, str], values: list[str], negate: bool) -> bool:
    for v in values:
        k, eq, val = v.partition("=")
        hit = k in labels and (not eq or labels[k] == val)
        if hit == negate:
            return False
    return True


async def _discard(msg: dict) -> None:
    pass
