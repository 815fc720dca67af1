"""The Dockerfile frontend (`dockerfile.v0`) of a Solve, run through pyd's own builder (pyd.daemon.build).

What BuildKit's frontend does, in the same order and under the same vertex names: load the Dockerfile
from the `dockerfile` local, the .dockerignore and then the context from the `context` local (the client
filters, with the patterns we send), then the steps (`[stage 2/3] RUN ...`: FROM of an image, RUN, COPY,
ADD and WORKDIR are vertexes, as in dockerfile2llb), then the image exporter. The builder's classic text
stream is not used: the steps come through its StepProgress hook.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable

from pyd.daemon.buildkit.filesync import SyncError, SyncRequest, receive
from pyd.daemon.buildkit.grpc import INVALID_ARGUMENT, UNIMPLEMENTED, UNKNOWN, GrpcError
from pyd.daemon.buildkit.progress import Job, Vertex
from pyd.daemon.errors import HTTPError
from pyd.formats import dockerignore
from pyd.formats.reference import parse_reference

if TYPE_CHECKING:
    from pyd.daemon.build import dockerfile
    from pyd.daemon.build.builder import BuildContainers, Builder, Emit, PullForBuild
    from pyd.daemon.build.dockerfile import Instruction
    from pyd.daemon.build.runmounts import RunMount
    from pyd.daemon.buildkit.session import Session
    from pyd.daemon.events import EventBus
    from pyd.daemon.storage.graph import Graph, Image

FRONTEND = "dockerfile.v0"
IMAGE_EXPORTERS = ("moby", "image")
CLIENT_EXPORTERS = ("local", "tar")
CACHE_IMPORTERS = ("registry",)     # an image of pyd's store or a registry, as the classic cache_from
CACHE_EXPORTERS = ("inline",)       # the exported image is itself what a later import needs
VERTEX_COMMANDS = ("add", "copy", "run", "workdir")   # the instructions dockerfile2llb gives a vertex


@dataclass(frozen=True)
class BuildBackend:
    """What a Solve builds with: the classic builder's collaborators, and where it may write."""
    graph: Graph
    containers: BuildContainers
    pull: PullForBuild
    events: EventBus
    tmp_dir: str


@dataclass
class FrontendRequest:
    filename: str = "Dockerfile"
    target: str = ""
    buildargs: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    nocache: bool = False
    network: str = ""
    extrahosts: list[str] = field(default_factory=list)
    shmsize: int = 0
    # named contexts by context_key(name): a local dir of the session (its name there), or an image reference
    local_contexts: dict[str, str] = field(default_factory=dict)
    image_contexts: dict[str, str] = field(default_factory=dict)
    cache_from: list[str] = field(default_factory=list)    # image references whose steps are the cache


@dataclass(frozen=True)
class ClientOutput:
    """A local or tar exporter: the final filesystem goes back into the client's session."""
    kind: str       # "local" (a directory) or "tar"
    index: int      # its place among the Solve's exporters: the client finds its target by it


@dataclass
class ExportRequest:
    names: list[str] = field(default_factory=list)   # fully qualified: docker.io/library/x:latest
    outputs: list[ClientOutput] = field(default_factory=list)
    image: bool = False                              # an image exporter was asked for (maybe without names)


def parse_frontend_attrs(attrs: dict[str, str], host_platform: str) -> FrontendRequest:
    """The attributes buildx and compose send to dockerfile.v0, checked once."""
    out = FrontendRequest(filename=attrs.get("filename") or "Dockerfile", target=attrs.get("target", ""))
    for key, value in attrs.items():
        if key.startswith("build-arg:"):
            out.buildargs[key[len("build-arg:"):]] = value
        elif key.startswith("label:"):
            out.labels[key[len("label:"):]] = value
        elif key.startswith("context:"):
            _named_context(out, key[len("context:"):], value)
    if attrs.get("cache-imports"):
        try:
            entries = json.loads(attrs["cache-imports"])
        except ValueError:
            raise GrpcError(INVALID_ARGUMENT, "invalid cache-imports: not JSON") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise GrpcError(INVALID_ARGUMENT, "invalid cache-imports: not a list of importers")
        out.cache_from += parse_cache_imports([{"Type": e.get("Type") or e.get("type") or "",
                                                "Attrs": e.get("Attrs") or e.get("attrs") or {}} for e in entries])
    out.cache_from += [r.strip() for r in attrs.get("cache-from", "").split(",") if r.strip()]   # older clients
    out.nocache = "no-cache" in attrs     # "" is every stage; pyd's cache cannot skip single stages
    network = attrs.get("force-network-mode", "")
    if network not in ("", "default", "none", "host", "sandbox"):
        raise GrpcError(INVALID_ARGUMENT, f"invalid network mode {network!r}")
    out.network = {"sandbox": "default"}.get(network, network)
    out.extrahosts = [h for h in attrs.get("add-hosts", "").split(",") if h]
    try:
        out.shmsize = int(attrs.get("shm-size") or 0)
    except ValueError:
        raise GrpcError(INVALID_ARGUMENT, f"invalid shm-size {attrs['shm-size']!r}") from None
    for wanted in filter(None, attrs.get("platform", "").split(",")):
        if _platform(wanted) != _platform(host_platform):
            raise GrpcError(UNIMPLEMENTED, f"this daemon builds for {host_platform} only, not {wanted}")
    return out


def parse_cache_imports(entries: list[dict]) -> list[str]:
    """`--cache-from`: the references of registry importers; other importers are refused by type."""
    refs: list[str] = []
    for entry in entries:
        kind, attrs = entry["Type"], entry["Attrs"] or {}
        if kind not in CACHE_IMPORTERS:
            raise GrpcError(UNIMPLEMENTED, f"cache importer {kind!r} is not supported by this daemon "
                                           "(type=registry is: an image of its store or of a registry)")
        ref = str(attrs.get("ref") or "").strip()
        if not ref:
            raise GrpcError(INVALID_ARGUMENT, "registry cache importer requires ref")
        if ref not in refs:
            refs.append(ref)
    return refs


def check_cache_exports(entries: list[dict]) -> None:
    """`--cache-to`: inline is the image itself (what a later cache import reads); the others are refused."""
    for entry in entries:
        if entry["Type"] not in CACHE_EXPORTERS:
            raise GrpcError(UNIMPLEMENTED, f"cache exporter {entry['Type']!r} is not supported by this daemon "
                                           "(type=inline is)")


def solve_cache_options(cache: dict | None) -> list[str]:
    """A Solve's CacheOptions (with their deprecated forms): the exports checked, the import references."""
    cache = cache or {}
    exports = list(cache.get("Exports") or [])
    if cache.get("ExportRefDeprecated"):
        exports.append({"Type": "registry", "Attrs": {"ref": cache["ExportRefDeprecated"]}})
    check_cache_exports(exports)
    imports = list(cache.get("Imports") or [])
    imports += [{"Type": "registry", "Attrs": {"ref": r}} for r in cache.get("ImportRefsDeprecated") or []]
    return parse_cache_imports(imports)


def _named_context(out: FrontendRequest, name: str, value: str) -> None:
    """`context:NAME` (buildx's --build-context): `local:LOCAL` (a local dir of the session) or
    `docker-image://REF`; BuildKit's other sources are refused with its words."""
    from pyd.daemon.build.builder import context_key
    kind, _, rest = value.partition(":")
    key = context_key(name)
    if kind == "local" and rest:
        out.local_contexts[key] = rest
    elif kind == "docker-image" and rest.startswith("//") and rest[2:]:
        out.image_contexts[key] = rest[2:]
    elif kind in ("git", "http", "https", "oci-layout", "input", "target"):
        raise GrpcError(UNIMPLEMENTED, f"named context {name}: {kind} sources are not supported by this daemon "
                                       "(local directories and docker-image:// are)")
    else:
        raise GrpcError(INVALID_ARGUMENT, f"unsupported context source {kind} for {name}")


def _platform(spec: str) -> str:
    parts = spec.strip().lower().split("/")
    if len(parts) == 3 and parts[1] == "amd64" and parts[2] == "v1":   # amd64's default variant
        parts = parts[:2]
    if len(parts) == 2 and parts[1] == "arm64":
        parts.append("v8")
    return "/".join(parts)


def parse_exporters(exporters: list[dict], legacy_type: str, legacy_attrs: dict[str, str]) -> ExportRequest:
    """The image exporter (moby/image), its `name`s; no exporter is a build whose result is only cached.
    `push` is the client's to do: buildx pushes a moby export through the Engine API once it is tagged."""
    if not exporters and legacy_type:
        exporters = [{"Type": legacy_type, "Attrs": legacy_attrs}]
    out = ExportRequest()
    for index, exp in enumerate(exporters):
        kind, attrs = exp["Type"], exp["Attrs"]
        if kind in CLIENT_EXPORTERS:
            out.outputs.append(ClientOutput(kind, index))
            continue
        if kind not in IMAGE_EXPORTERS:
            raise GrpcError(UNIMPLEMENTED, f"exporter {kind!r} is not supported by this daemon "
                                           "(use --load, or -o type=local or type=tar)")
        out.image = True
        for name in filter(None, (n.strip() for n in attrs.get("name", "").split(","))):
            try:
                ref = str(parse_reference(name))
            except HTTPError as exc:
                raise GrpcError(INVALID_ARGUMENT, f"invalid reference {name!r}: {exc.message}") from None
            if ref not in out.names:
                out.names.append(ref)
    return out


def buildkit_message(message: str) -> str:
    """The classic builder's words for a failure, as BuildKit says them."""
    m = re.fullmatch(r"The command '(.*)' returned a non-zero code: (\d+)", message, re.S)
    if m:
        return f'process "{m[1]}" did not complete successfully: exit code: {m[2]}'
    m = re.fullmatch(r"failed to reach build target (.*) in Dockerfile", message)
    if m:
        return f'target stage "{m[1]}" could not be found'
    m = re.fullmatch(r"Cannot locate specified Dockerfile: (.*)", message)
    if m:
        return f"failed to read dockerfile: open {m[1]}: no such file or directory"
    return message


@dataclass
class _StageProgress:
    prefix: str           # "build " or ""
    total: int            # the stage's vertexes, as dockerfile2llb counts them
    last: list[str]       # the inputs of its next vertex: its previous one (or what it starts from)
    base: int | None = None   # the stage it starts from
    index: int = 0
    current: Vertex | None = None
    cached: bool = False


class StageSteps:
    """The builder's StepProgress for one Solve: each step that dockerfile2llb makes a vertex becomes one,
    named `[stage i/n] TEXT`; it ends at the next step of its stage or the stage's end. Stages may run at
    once: each has its own vertex under way, which gets that stage's cache hits and logs."""

    def __init__(self, job: Job, stage_names: list[str], expand_base: Callable[[dockerfile.Stage], str],
                 first_inputs: list[str], image_contexts: dict[str, str] | None = None,
                 local_contexts: set[str] | frozenset[str] = frozenset()) -> None:
        self._job = job
        self._image_contexts = image_contexts or {}    # named contexts: FROM one is not a FROM vertex
        self._local_contexts = local_contexts
        self._names = stage_names          # every stage of the Dockerfile, lower-case ("" unnamed)
        self._expand = expand_base
        self._stages: dict[int, _StageProgress] = {}
        self._first = list(first_inputs)
        self._last: list[str] = list(first_inputs)     # the vertex that ended last: the exporter's input
        self._metadata_done: set[str] = set()

    def _close(self, p: _StageProgress, error: str = "") -> None:
        if p.current is not None:
            self._job.complete(p.current, cached=p.cached, error=error)
            p.last = self._last = [p.current.digest]
        p.current, p.cached = None, False

    def _open(self, p: _StageProgress, text: str) -> None:
        name = text
        if p.total:
            p.index += 1
            name = f"[{p.prefix}{p.index:>{len(str(p.total))}}/{p.total}] {text}"
        if p.base is not None and p.last == self._first and p.base in self._stages:
            p.last = self._stages[p.base].last
        p.current = self._job.vertex(name, p.last)

    async def step(self, stage_index: int, stage: dockerfile.Stage, ins: Instruction | None) -> None:
        if ins is None:
            from pyd.daemon.build.builder import context_key
            base = self._expand(stage)
            earlier = self._names[:stage_index]
            from_image = base.lower() not in earlier and base != "scratch"
            named = context_key(base) if from_image else ""
            if named in self._image_contexts or named in self._local_contexts:
                from_image = False
            # dockerfile2llb: no stage label in a one-stage file, even a named one; stage-N when unnamed
            label = (stage.name or f"stage-{stage_index}") if len(self._names) > 1 else ""
            p = self._stages[stage_index] = _StageProgress(
                label + " " if label else "",
                int(from_image) + sum(1 for c in stage.commands if c.cmd in VERTEX_COMMANDS), list(self._first),
                earlier.index(base.lower()) if base.lower() in earlier and base else None)
            if named in self._image_contexts:
                try:
                    shown = str(parse_reference(self._image_contexts[named]))
                except HTTPError:
                    shown = self._image_contexts[named]
                p.current = self._job.vertex(f"[context {named}] {shown}", p.last)
            if not from_image:
                return
            try:
                shown = str(parse_reference(base))
            except HTTPError:
                shown = base
            if shown not in self._metadata_done:
                self._metadata_done.add(shown)
                self._job.complete(self._job.vertex(f"[internal] load metadata for {shown}"))
            self._open(p, f"FROM {shown}")
            return
        p = self._stages[stage_index]
        self._close(p)
        if ins.cmd in VERTEX_COMMANDS:
            self._open(p, _step_text(ins))

    def stage_done(self, stage_index: int) -> None:
        p = self._stages.get(stage_index)
        if p is not None:
            self._close(p)

    def cached(self, stage_index: int) -> None:
        p = self._stages.get(stage_index)
        if p is not None:
            p.cached = True

    async def log(self, stage_index: int, stream: int, data: bytes) -> None:
        p = self._stages.get(stage_index)
        if p is not None and p.current is not None:
            self._job.log(p.current, stream, data)

    def end(self, error: str = "", failed_stage: int | None = None) -> None:
        """The build ended: the failed stage's step under way carries the error; the others just end."""
        failed = self._stages.get(failed_stage) if failed_stage is not None else None
        if error and failed is not None:
            self._close(failed, error)
        for p in self._stages.values():
            self._close(p)

    @property
    def last_inputs(self) -> list[str]:
        return self._last


def _step_text(ins: Instruction) -> str:
    text = re.sub(r"\\\s*\n\s*", "", ins.original).strip()
    word, _, rest = text.partition(" ")
    return word.upper() + (" " + rest.strip() if rest else "")


def _ignore_patterns(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return dockerignore.read_patterns(f.read())
    except FileNotFoundError:
        return []


def _needs_context(stages: list[dockerfile.Stage]) -> bool:
    """COPY/ADD without --from, or RUN --mount=type=bind (the default type) without from=, reads the context."""
    from pyd.daemon.build import runmounts
    for ins in (i for s in stages for i in s.commands):
        if ins.cmd in ("add", "copy") and not ins.flags.get("from"):
            return True
        for spec in ins.lists.get("mount", []) if ins.cmd == "run" else []:
            try:
                mount = runmounts.parse(spec, lambda v: v)
            except runmounts.MountError:
                return True     # the step reports it; the context may be what it wanted
            if mount.type == "bind" and not mount.from_:
                return True
    return False


class DockerfileSolve:
    """One dockerfile.v0 build (sync the locals, run the steps) and the export of its image."""

    def __init__(self, backend: BuildBackend, job: Job, session: Session, running: set[Builder],
                 cache_from: list[str] | None = None) -> None:
        self._backend = backend
        self._job = job
        self._session = session
        self._running = running
        self._cache_from = list(cache_from or [])     # the Solve's cache imports (every build of it)
        self._inputs: list[str] = []      # the last step's vertex: the exporter's input

    async def _sync(self, name: str, request: SyncRequest, dest: str, status: str) -> Vertex:
        job = self._job
        v = job.vertex(name)
        started = time.time()
        try:
            result = await receive(self._session, request, dest)
        except SyncError as exc:
            job.complete(v, error=str(exc))
            raise GrpcError(UNKNOWN, str(exc)) from None
        job.status(v, status, current=result.bytes, done=True, started=started)
        job.complete(v)
        return v

    async def _pull(self, name: str, auth_configs: dict[str, dict], emit: Emit | None) -> Image:
        """The builder's pull, with the client's credentials for the registry (from its session)."""
        from pyd.daemon.buildkit.auth import credentials
        domain = parse_reference(name).domain
        if domain not in auth_configs:
            found = await credentials(self._session, domain)
            if found is not None:
                auth_configs = {**auth_configs, domain: found}
        return await self._backend.pull(name, auth_configs, emit)

    async def _load_ignore(self, name: str, local: str, dest: str) -> str:
        """Fetch only the .dockerignore of a local dir; the path it has here (absent when there is none)."""
        os.makedirs(dest, exist_ok=True)
        await self._sync(name, SyncRequest(local, follow=[".dockerignore"]), dest, f"transferring {local}:")
        return os.path.join(dest, ".dockerignore")

    def _local_context(self, key: str, local: str, folder: str) -> Callable[[], Awaitable[str]]:
        """A named local context, fetched (its .dockerignore first, then the rest with it) when the build
        first reads it; later reads get the same directory."""
        lock = asyncio.Lock()
        fetched: list[str] = []

        async def load() -> str:
            async with lock:
                if not fetched:
                    ignore = await self._load_ignore(f"[context {key}] load .dockerignore", local,
                                                     os.path.join(folder, "ignore"))
                    dest = os.path.join(folder, "files")
                    os.makedirs(dest)
                    await self._sync(f"[context {key}] load from client",
                                     SyncRequest(local, exclude=_ignore_patterns(ignore)), dest,
                                     f"transferring {local}:")
                    fetched.append(dest)
            return fetched[0]
        return load

    async def _import_cache(self, refs: list[str]) -> list[str]:
        """The cache sources' image IDs: each reference from the store, else pulled (with the client's
        credentials). One that cannot be had fails its vertex, not the build (BuildKit's way)."""
        found: list[str] = []
        for ref in refs:
            v = self._job.vertex(f"importing cache manifest from {ref}")
            try:
                name = str(parse_reference(ref))
                try:
                    image = await asyncio.to_thread(self._backend.graph.resolve_image, name)
                except HTTPError:
                    image = await self._pull(name, {}, None)
            except HTTPError as exc:
                self._job.complete(v, error=f"failed to configure registry cache importer: {exc.message}")
                continue
            found.append(image.id)
            self._job.complete(v)
        return found

    async def build(self, req: FrontendRequest) -> str:
        """The image ID of the build (its steps in the cache, untagged)."""
        root = tempfile.mkdtemp(prefix="buildkit-", dir=self._backend.tmp_dir)
        try:
            return await self._build(req, root)
        finally:
            await asyncio.to_thread(shutil.rmtree, root, True)

    async def _build(self, req: FrontendRequest, root: str) -> str:
        from pyd.daemon.build import dockerfile
        from pyd.daemon.build.builder import BuildError, Builder, BuildOptions, NamedContext
        from pyd.daemon.errors import BadParameter

        job, backend = self._job, self._backend
        df_dir, ignore_dir, context_dir = (os.path.join(root, d) for d in ("dockerfile", "ignore", "context"))
        for d in (df_dir, ignore_dir, context_dir):
            os.mkdir(d)
        name = req.filename
        definition = await self._sync(f"[internal] load build definition from {name}",
                                      SyncRequest("dockerfile", include=[name, name + ".dockerignore"]),
                                      df_dir, "transferring dockerfile:")

        opts = BuildOptions(dockerfile=name, buildargs=dict(req.buildargs), target=req.target,
                            nocache=req.nocache, labels=dict(req.labels), networkmode=req.network,
                            extrahosts=list(req.extrahosts), shmsize=req.shmsize,
                            forcerm=True)     # BuildKit leaves no step container behind, failed or cancelled
        session = self._session

        async def secret(secret_id: str) -> bytes | None:
            from pyd.daemon.buildkit.secrets import get_secret
            return await get_secret(session, secret_id)
        opts.secret_source = secret

        async def agent(mount: RunMount) -> tuple[str, Callable[[], Awaitable[None]]] | None:
            from pyd.daemon.buildkit.sshforward import open_agent
            return await open_agent(session, mount, self._backend.tmp_dir)
        opts.ssh_source = agent
        opts.contexts = {key: NamedContext(image=ref) for key, ref in req.image_contexts.items()}
        opts.cache_from = await self._import_cache(list(dict.fromkeys(self._cache_from + req.cache_from)))
        for i, (key, local) in enumerate(sorted(req.local_contexts.items())):
            opts.contexts[key] = NamedContext(load=self._local_context(key, local, os.path.join(root, f"named-{i}")))

        async def ignore_text(msg: dict) -> None:
            return None     # the classic stream: the steps come through StageSteps instead

        holder: list[Builder] = []

        def expand_base(stage: dockerfile.Stage) -> str:
            b = holder[0]
            try:
                return b.lexer.word(stage.base, {k: v for k, v in b.meta_args.items() if v is not None})
            except dockerfile.DockerfileError:
                return stage.base

        all_names: list[str] = []
        steps = StageSteps(job, all_names, expand_base, [definition.digest], dict(req.image_contexts),
                           frozenset(req.local_contexts))
        builder = Builder(backend.graph, backend.containers, self._pull, context_dir, opts, ignore_text, steps,
                          dockerfile_dir=df_dir)
        holder.append(builder)
        try:
            builder.prepare()
        except BadParameter as exc:
            raise GrpcError(UNKNOWN, buildkit_message(exc.message)) from None
        assert builder.df is not None
        all_names.extend(s.name for s in dockerfile.split_stages(builder.df)[1])

        if _needs_context(builder.stages):
            ignore_file = os.path.join(df_dir, name + ".dockerignore")
            if not os.path.isfile(ignore_file):
                ignore_file = await self._load_ignore("[internal] load .dockerignore", "context", ignore_dir)
            await self._sync("[internal] load build context",
                             SyncRequest("context", exclude=_ignore_patterns(ignore_file)),
                             context_dir, "transferring context:")

        self._running.add(builder)
        try:
            image_id = await builder.run()
        except BuildError as exc:
            message = buildkit_message(exc.message)
            steps.end(message, builder.failed_stage)
            raise GrpcError(UNKNOWN, message) from None
        except (BadParameter, OSError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            steps.end(message, builder.failed_stage)
            raise GrpcError(UNKNOWN, message) from None
        finally:
            self._running.discard(builder)
        steps.end()
        self._inputs = steps.last_inputs
        return image_id

    async def export(self, image_id: str, export: ExportRequest) -> dict[str, str]:
        """Each exporter's work; their response (--iidfile, --metadata-file)."""
        for output in export.outputs:
            await self._export_to_client(image_id, output)
        if export.outputs and not export.image:
            return {}
        return await self._export_image(image_id, export)

    async def _export_to_client(self, image_id: str, output: ClientOutput) -> None:
        """The image's filesystem into the client's session: a directory (local) or a tarball (tar)."""
        from pyd.daemon.buildkit.filesend import SendError, send_dir, send_file, walk, write_tar
        job, graph, tmp = self._job, self._backend.graph, self._backend.tmp_dir
        local = output.kind == "local"
        v = job.vertex("exporting to client directory" if local else "exporting to client tarball", self._inputs)
        started = time.time()
        sent = [0]

        def progress(n: int) -> None:
            sent[0] = n
        rw_id = "build-export-" + os.urandom(16).hex()
        await asyncio.to_thread(graph.create_rw, rw_id, image_id)
        try:
            root = await asyncio.to_thread(graph.mount_rw, rw_id)
            try:
                entries = await asyncio.to_thread(lambda: list(walk(root)))
                if local:
                    await send_dir(self._session, entries, output.index, progress)
                else:
                    fd, tar_path = tempfile.mkstemp(prefix="buildkit-export-", suffix=".tar", dir=tmp)
                    os.close(fd)
                    try:
                        await asyncio.to_thread(write_tar, entries, tar_path)
                        await send_file(self._session, tar_path, output.index, progress)
                    finally:
                        os.unlink(tar_path)
            finally:
                await asyncio.to_thread(graph.unmount_rw, rw_id)
        except (SendError, OSError) as exc:
            job.complete(v, error=str(exc))
            raise GrpcError(UNKNOWN, str(exc)) from None
        finally:
            await asyncio.to_thread(graph.remove_rw, rw_id)
        job.status(v, "copying files" if local else "sending tarball", current=sent[0], done=True, started=started)
        job.complete(v)

    async def _export_image(self, image_id: str, export: ExportRequest) -> dict[str, str]:
        """Tag the image with the exporter's names."""
        job, graph = self._job, self._backend.graph
        v = job.vertex("exporting to image", self._inputs)
        job.status(v, "exporting layers", done=True)
        job.status(v, f"writing image {image_id}", done=True)
        for ref in export.names:
            started = time.time()
            await asyncio.to_thread(graph.tag, image_id, ref)
            self._backend.events.publish("image", "tag", image_id, {"name": parse_reference(ref).familiar()})
            job.status(v, f"naming to {ref}", done=True, started=started)
        job.complete(v)
        response = {"containerimage.digest": image_id, "containerimage.config.digest": image_id}
        if export.names:
            response["image.name"] = ",".join(export.names)
        return response
