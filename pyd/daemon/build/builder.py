"""The classic builder (`POST /build` without BuildKit): stages, ARG/ENV scoping, the build cache, RUN in
real containers, COPY/ADD, and Docker's JSON progress stream.

Each step makes an image whose parent is the previous step's image, as dockerd's classic builder does:
RUN commits the container's changes as a layer, COPY/ADD/WORKDIR commit a scratch read-write layer, every
other instruction makes a config-only image (empty_layer in the history). The cache is dockerd's: a child of
the current image whose `container_config` (the run config with the step's command, `#(nop) ...` for
metadata steps, the content checksum for COPY/ADD, the build args for RUN) equals the step's.
"""
from __future__ import annotations

import asyncio
import codecs
import copy
import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from pyd.daemon.storage import archive
from pyd.daemon.build import copying, dockerfile, platforms, remote, run_heredocs, runmounts, stages as stage_graph
from pyd.daemon.build.cache_from import CacheSources
from pyd.daemon.build.ordered import OrderedOutput
from pyd.formats import dockerignore, rfc3339
from pyd.formats.platforms import Platform, config_fields, image_platform
from pyd.formats.reference import parse_reference
from pyd.daemon.build.dockerfile import DockerfileError, Instruction, Lexer
from pyd.daemon.errors import BadParameter, NotFound
from pyd.daemon.errors import HTTPError

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container
    from pyd.daemon.storage.graph import Graph, Image

log = logging.getLogger("pyd.builder")

Emit = Callable[[dict], Awaitable[None]]
# FROM an image that is not here: pull(name, X-Registry-Config auths, progress or None for quiet)
PullForBuild = Callable[[str, dict[str, dict], "Emit | None"], Awaitable["Image"]]


class BuildContainers(Protocol):
    """The container calls a RUN step makes."""
    async def create(self, name: str | None, body: Any) -> dict[str, Any]: ...
    def get(self, ref: str) -> Container: ...
    def subscribe(self, c: Container, queue: asyncio.Queue) -> None: ...
    def unsubscribe(self, c: Container, queue: asyncio.Queue) -> None: ...
    async def start(self, ref: str, manual: bool = True) -> None: ...
    async def wait(self, ref: str, condition: str = "not-running") -> dict[str, Any]: ...
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...


class StepProgress(Protocol):
    """What BuildKit's progress needs beyond the classic text stream: where each step begins (a stage may
    be built in the middle of another's step: COPY --from, FROM), where a stage ends, which steps were
    cache hits, and the output of the RUN in progress (which then stays out of the text stream)."""
    async def step(self, stage_index: int, stage: dockerfile.Stage, ins: Instruction | None) -> None: ...
    def stage_done(self, stage_index: int) -> None: ...
    def cached(self, stage_index: int) -> None: ...
    async def log(self, stage_index: int, stream: int, data: bytes) -> None: ...


DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
_EXPAND = {"add", "copy", "env", "expose", "label", "stopsignal", "user", "volume", "workdir"}
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                "m": 60_000_000_000, "h": 3_600_000_000_000}


class BuildError(Exception):
    """A failed step; `code` is the RUN's exit code (sent as errorDetail.code, the docker CLI's status)."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.message, self.code = message, code


@dataclass(frozen=True)
class NamedContext:
    """A named build context (BuildKit's `--build-context NAME=...`): an image reference, or a directory
    fetched when the build first reads it (`load()` gives its path)."""
    image: str = ""
    load: Callable[[], Awaitable[str]] | None = None


def context_key(ref: str) -> str:
    """The name a reference looks up among the named contexts: its familiar form without `:latest`
    (BuildKit's rule: `FROM busybox:latest` and `FROM docker.io/library/busybox` both find `busybox`)."""
    try:
        familiar = parse_reference(ref).familiar()
    except HTTPError:
        return ref
    return familiar[:-len(":latest")] if familiar.endswith(":latest") else familiar


@dataclass
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    buildargs: dict[str, str | None] = field(default_factory=dict)
    target: str = ""
    nocache: bool = False
    rm: bool = True
    forcerm: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    networkmode: str = ""
    extrahosts: list[str] = field(default_factory=list)
    shmsize: int = 0
    memory: int = 0
    auth_configs: dict[str, dict] = field(default_factory=dict)   # X-Registry-Config: registry -> credentials
    cache_from: list[str] = field(default_factory=list)           # images whose steps are the cache
    secrets: dict[str, bytes] = field(default_factory=dict)       # RUN --mount=type=secret: id -> content
    # asked for a secret id not in `secrets` when a step mounts it (a BuildKit session's Secrets service)
    secret_source: Callable[[str], Awaitable[bytes | None]] | None = None
    platform: str = ""                                            # the target platform ("" the host's)
    ssh_source: runmounts.OpenAgent | None = None                 # RUN --mount=type=ssh: the client's agents
    contexts: dict[str, NamedContext] = field(default_factory=dict)   # context_key(name) -> context


@dataclass
class _Stage:
    """What one stage has built so far."""
    image: "Image | None"
    config: dict
    args: dict[str, str | None] = field(default_factory=dict)   # ARGs declared in this stage
    cmd_set: bool = False
    busted: bool = False          # a cache miss: no more lookups in this stage (dockerd's rule)
    index: int = 0                # the stage's position in the Dockerfile

    @property
    def image_id(self) -> str:
        return self.image.id if self.image else ""


def short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


def go_quote_list(items: list[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def parse_duration(value: str, name: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") in nanoseconds; 0 when empty."""
    if not value:
        return 0
    pos, total = 0, 0.0
    for m in _GO_DURATION.finditer(value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_NS[m.group(2)]
        pos = m.end()
    if pos != len(value) or value == "0":
        if value == "0":
            return 0
        raise BuildError(f'time: invalid duration "{value}"')
    ns = int(total)
    if ns < 1_000_000:
        raise BuildError(f'Interval "{name}" cannot be less than 1ms')
    return ns


# ---------------------------------------------------------------------------------------------------

class Builder:
    """One build: `prepare()` reads and parses the Dockerfile (errors before any output), `run()` builds."""

    def __init__(self, graph: Graph, containers: BuildContainers, pull: PullForBuild, context_dir: str,
                 opts: BuildOptions, emit: Emit, steps: StepProgress | None = None,
                 dockerfile_dir: str | None = None) -> None:
        """steps: structured progress (BuildKit's); dockerfile_dir: where opts.dockerfile is, when not in
        the context."""
        self.graph = graph
        self.containers = containers
        self.pull = pull
        self.context = context_dir
        self.opts = opts
        self._emit = emit
        self.steps = steps
        self.dockerfile_dir = dockerfile_dir
        self.df: dockerfile.Dockerfile | None = None
        self.meta: list[Instruction] = []
        self.stages: list[dockerfile.Stage] = []
        self.results: dict[str, str] = {}       # stage name or index -> image ID
        self.meta_args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.lexer = Lexer()
        self.held: set[str] = set()              # images this build stands on: build prune keeps them
        self.target = 0                          # the index of the stage the build ends with
        self.order: list[int] = []               # the stages the target needs, in Dockerfile order
        self.platform_args: dict[str, str] = {}  # TARGETPLATFORM, BUILDARCH, ...: usable once declared
        self._state: _Stage | None = None
        self._step, self._total = 0, 0
        self.suppressed: list[str] = []          # quiet: the step log, which dockerd sends only on failure
        self._tasks: dict[int, asyncio.Task[str]] = {}     # stage index -> its build (stages run at once)
        self._task_stage: dict[asyncio.Task, int] = {}    # the other way round: whose output, who waits
        self._waits: dict[int, int] = {}                  # stage -> the stage it waits for now
        self._first_step: dict[int, int] = {}             # stage -> the number of its FROM step
        self._output = OrderedOutput(self._deliver, str(graph.tmp))
        # cache_from: only those images (and what they stand on) are cache sources
        self._cache_sources = CacheSources(graph, opts.cache_from) if opts.cache_from else None
        self.failed_stage: int | None = None              # the stage whose step failed the build

    def held_images(self) -> set[str]:
        return self.held | {i for i in self.results.values() if i}

    # ---- output -----------------------------------------------------------------------------------
    async def out(self, text: str) -> None:
        await self._send({"stream": text})

    async def _send(self, message: dict) -> None:
        """A message of the classic stream, in the order of the stage it belongs to (ordered.py)."""
        task = asyncio.current_task()
        await self._output.send(self._task_stage.get(task) if task is not None else None, message)

    async def _deliver(self, message: dict) -> None:
        """What goes out, in order; with -q the step log is kept back (sent only should the build fail)."""
        if self.opts.quiet and "stream" in message:
            self.suppressed.append(message["stream"])
        else:
            await self._emit(message)

    # ---- parse ------------------------------------------------------------------------------------
    def prepare(self) -> None:
        name = self.opts.dockerfile or "Dockerfile"
        path = archive.secure_join(self.dockerfile_dir or self.context, name.lstrip("/"))
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BadParameter(f"Cannot locate specified Dockerfile: {name}") from None
        ignore = dockerignore.load(self.context)   # dockerd drops these two when .dockerignore lists them
        for own in (".dockerignore", name.lstrip("/")):
            if ignore.excluded(own):
                try:
                    os.unlink(os.path.join(self.context, own))
                except OSError:
                    pass
        if not text.strip():
            raise BadParameter(f"the Dockerfile ({name}) cannot be empty")
        try:
            self.df = dockerfile.parse(text)
            self.meta, self.stages = dockerfile.split_stages(self.df)
        except DockerfileError as exc:
            raise BadParameter(str(exc)) from None
        if self.df.syntax and not dockerfile.builtin_frontend(self.df.syntax):
            raise BadParameter(f'unsupported frontend "{self.df.syntax}" in the "# syntax=" line: this builder '
                               "runs only its built-in Dockerfile frontend (docker/dockerfile:1); remove the line "
                               "or name docker/dockerfile:1")
        if not self.stages:
            raise BadParameter("dockerfile parse error on line 1: no build stage in current context")
        self.lexer = Lexer(self.df.escape)
        try:
            here = platforms.host()
            target = platforms.runnable(self.opts.platform) if self.opts.platform else here
        except platforms.PlatformError as exc:
            raise BadParameter(str(exc)) from None
        self.platform_args = platforms.args(target, here)
        self.target = len(self.stages) - 1
        if self.opts.target:
            names = [s.name for s in self.stages]
            if self.opts.target.lower() not in names:
                raise BadParameter(f"failed to reach build target {self.opts.target} in Dockerfile")
            self.target = names.index(self.opts.target.lower())
        for key in sorted(self.opts.labels):
            value = self.opts.labels[key]
            ins = Instruction("label", f"LABEL {key}={value}", 0, {"_noexpand": "1"}, "", [key, value])
            self.stages[self.target].commands.append(ins)

    def _global_env(self) -> dict[str, str]:
        """What FROM lines and stage references see: the platform ARGs and the global ARGs."""
        env = dict(self.platform_args)
        env.update({k: v for k, v in self.meta_args.items() if v is not None})
        return env

    def _build_arg(self, key: str) -> str | None:
        """A --build-arg's value, else the automatic platform ARG of that name."""
        given = self.opts.buildargs.get(key)
        if key in self.opts.buildargs and given is not None:
            return given
        return self.platform_args.get(key)

    # ---- the build --------------------------------------------------------------------------------
    async def run(self) -> str:
        """Build every stage; returns the final image ID."""
        assert self.df is not None
        for warning in self.df.warnings:
            await self.out(warning + "\n")
        for ins in self.meta:   # the global ARGs first: stage references may name them
            self._meta_arg(ins)
        try:
            replaced = {i for i, s in enumerate(self.stages) if s.name and self._context(s.name) is not None}
            self.order = stage_graph.needed(self.stages, self.target,
                                            lambda ref: self.lexer.word(ref, self._global_env()), replaced)
        except DockerfileError as exc:
            raise BuildError(exc.message) from None
        except stage_graph.StageError as exc:
            raise BuildError(str(exc)) from None
        self._total = len(self.meta) + sum(1 + len(self.stages[i].commands) for i in self.order)
        for ins in self.meta:
            self._step += 1
            await self.out(f"Step {self._step}/{self._total} : {ins.original}\n")
        for index in self.order:
            self._first_step[index] = self._step + 1
            self._step += 1 + len(self.stages[index].commands)
        await self._build_stages()
        state = self._state
        unused = sorted(k for k in self.opts.buildargs if k not in self.used_args and k not in PROXY_ARGS)
        if unused:
            await self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        if state is None or not state.image_id:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        return state.image_id

    async def _build_stages(self) -> None:
        """Every stage the target needs, each in its own task: a stage waits only where it reads another
        (FROM, COPY --from, RUN --mount from=), so independent stages run at once. The first failure
        cancels the others; the stream then gets what they had written so far."""
        for index in self.order:
            self._stage_task(index)
        try:
            while True:
                pending = [t for t in self._tasks.values() if not t.done()]
                if not pending:
                    break
                await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                failed = sorted((i != self.failed_stage, i) for i, t in self._tasks.items()
                                if t.done() and not t.cancelled() and t.exception())
                if failed:       # the stage whose own step failed first, before those waiting on it
                    raise self._tasks[failed[0][1]].exception()     # type: ignore[misc]
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            await self._output.flush()

    def _stage_task(self, index: int) -> asyncio.Task[str]:
        task = self._tasks.get(index)
        if task is None:
            if index not in self._first_step:     # reached only through a reference expanded late
                self._first_step[index] = self._total + 1
                self._total += 1 + len(self.stages[index].commands)
            self._output.add(index)
            task = self._tasks[index] = asyncio.get_running_loop().create_task(self._stage_run(index))
            self._task_stage[task] = index
        return task

    async def _stage_run(self, index: int) -> str:
        try:
            image_id = await self._run_stage(index)
        except Exception:
            if self.failed_stage is None:    # the first to fail: those waiting on it fail after it
                self.failed_stage = index
            raise
        await self._output.finished(index)
        return image_id

    async def _build_stage(self, index: int) -> str:
        """Stage `index`'s image ID, once its build (started now if it was not yet) is done."""
        task = asyncio.current_task()
        me = self._task_stage.get(task) if task is not None else None
        if me is not None:
            waited = index
            while waited != me and waited in self._waits:
                waited = self._waits[waited]
            if waited == me:
                stage = self.stages[index]
                raise BuildError(f"circular dependency detected on stage: {stage.name or index}")
            self._waits[me] = index
        try:
            return await asyncio.shield(self._stage_task(index))
        finally:
            if me is not None:
                self._waits.pop(me, None)

    async def _run_stage(self, index: int) -> str:
        """Build stage `index`; its image ID."""
        stage = self.stages[index]
        replaced = self._context(stage.name) if stage.name else None
        if replaced is not None:   # a named context of the stage's name stands in for the whole stage
            image = await self._context_image(replaced, stage.name)
            config = dict(_default_config())
            if image is not None:
                config.update(copy.deepcopy(image.container_config()))
            return self._stage_built(index, stage, _Stage(image, config, index=index))
        step = self._first_step[index]
        await self.out(f"Step {step}/{self._total} : {stage.from_.original}\n")
        if self.steps is not None:
            await self.steps.step(index, stage, None)
        state = await self._from(stage, index)
        self.held.add(state.image_id)
        await self.out(f" ---> {short(state.image_id)}\n")
        for ins in stage.commands:
            step += 1
            await self.out(f"Step {step}/{self._total} : {ins.original}\n")
            if self.steps is not None:
                await self.steps.step(index, stage, ins)
            await self.dispatch(state, ins)
            await self.out(f" ---> {short(state.image_id)}\n")
        if self.steps is not None:
            self.steps.stage_done(index)
        if state.image_id:
            await self._send({"aux": {"ID": state.image_id}})
        return self._stage_built(index, stage, state)

    def _stage_built(self, index: int, stage: dockerfile.Stage, state: _Stage) -> str:
        if state.image_id:
            self.held.add(state.image_id)
        self.results[str(index)] = state.image_id
        if stage.name:
            self.results[stage.name] = state.image_id
        if index == self.target:
            self._state = state
        return state.image_id

    # ---- named contexts ---------------------------------------------------------------------------
    def _context(self, ref: str) -> NamedContext | None:
        return self.opts.contexts.get(context_key(ref)) if self.opts.contexts else None

    async def _context_image(self, ctx: NamedContext, name: str) -> "Image | None":
        """The image a named context stands for: its image, or its directory as a one-layer image."""
        if ctx.load is None:
            return await self._find_image(ctx.image)
        path = await ctx.load()
        state = _Stage(None, dict(_default_config()), index=-1)
        digest = await asyncio.to_thread(copying.hash_sources, [(path, ".")])
        cache_config = dict(state.config, Cmd=DEFAULT_SHELL + ["#(nop) ", f"FROM context {name} {digest}"])
        if not await self._probe(state, cache_config):
            layer = await self._in_scratch_layer(
                state, lambda root: shutil.copytree(path, root, symlinks=True, dirs_exist_ok=True))
            self._commit(state, layer, cache_config)
        return state.image

    async def _image_or_context(self, ref: str) -> "Image | None":
        """An image reference, or the named context of that name."""
        ctx = self._context(ref)
        return await self._find_image(ref) if ctx is None else await self._context_image(ctx, ref)

    async def _source(self, ref: str) -> tuple["Image | None", str]:
        """What COPY --from and RUN --mount from= read: a stage's or an image's root, or a named context's
        directory (image None, its path)."""
        is_stage, image = await self._stage_image(ref)
        if is_stage:
            return image, ""
        ctx = self._context(ref)
        if ctx is not None and ctx.load is not None:
            return None, await ctx.load()
        return await self._image_or_context(ref), ""

    async def _stage_image(self, ref: str, before: int | None = None) -> tuple[bool, "Image | None"]:
        """(True, image) when `ref` names a stage (before `before` for FROM; any for COPY --from and --mount
        from=), built now if it was not yet (None for a scratch stage); else (False, None)."""
        try:
            index = stage_graph.find(self.stages, ref, before)
        except stage_graph.StageError as exc:
            raise BuildError(str(exc)) from None
        if index is None:
            return False, None
        image_id = await self._build_stage(index)
        return True, (self.graph.image(image_id) if image_id else None)

    def _meta_arg(self, ins: Instruction) -> None:
        env = {k: v for k, v in self.meta_args.items() if v is not None}
        for word in ins.args:
            key, eq, default = word.partition("=")
            value = self.lexer.word(default, env) if eq else None
            key = self.lexer.word(key, env)
            if self._build_arg(key) is not None:
                value = self._build_arg(key)
            self.meta_args[key] = value
            self.used_args.add(key)
            if value is not None:
                env[key] = value

    async def _from(self, stage: dockerfile.Stage, index: int) -> _Stage:
        env = self._global_env()
        try:
            name = self.lexer.word(stage.base, env)
            wanted = self.lexer.word(stage.platform, env) if stage.platform else ""
        except DockerfileError as exc:
            raise BuildError(exc.message) from None
        if not name:
            raise BuildError("base name (" + stage.base + ") should not be blank")
        if wanted:
            try:
                platforms.runnable(wanted)
            except platforms.PlatformError as exc:
                raise BuildError(f"FROM --platform={stage.platform}: {exc}") from None
        image = None
        is_stage = False
        if not name.isdigit():
            is_stage, image = await self._stage_image(name, index)
        if is_stage:
            pass
        elif name != "scratch":
            image = await self._image_or_context(name)
        config = dict(_default_config())
        if image is not None:
            config.update(copy.deepcopy(image.container_config()))
        if not any(e.startswith("PATH=") for e in config.get("Env") or []):
            config["Env"] = list(config.get("Env") or []) + [DEFAULT_PATH]    # dockerd's setDefaultPath
        state = _Stage(image, config, index=index)
        triggers = list(config.get("OnBuild") or [])
        if triggers:
            config["OnBuild"] = None
            await self.out(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for text in triggers:
                try:
                    ins = dockerfile.parse_line(text, stage.from_.line, self.lexer.escape)
                except DockerfileError as exc:
                    raise BuildError(exc.message) from None
                await self.dispatch(state, ins)
        return state

    async def _find_image(self, name: str) -> "Image":
        """A local image, or one pulled as the classic builder does, its progress in the build output."""
        try:
            return self.graph.resolve_image(name)
        except NotFound:
            pass
        except BadParameter as exc:
            raise BuildError(exc.message) from None
        try:
            return await self.pull(name, getattr(self.opts, "auth_configs", {}), None if self.opts.quiet else self._send)
        except HTTPError as exc:
            raise BuildError(exc.message) from None

    # ---- dispatch ---------------------------------------------------------------------------------
    def _env(self, state: _Stage) -> dict[str, str]:
        """What ${VAR} sees: the stage's ARGs with values, overridden by its ENV."""
        env = {k: v for k, v in self._arg_values(state).items() if v is not None}
        for item in state.config.get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        return env

    def _arg_values(self, state: _Stage) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for key in state.args:
            given = self._build_arg(key)
            out[key] = given if given is not None else state.args[key]
        for key in PROXY_ARGS:   # predefined: usable without an ARG
            if key not in out and self.opts.buildargs.get(key) is not None:
                out[key] = self.opts.buildargs[key]
        return out

    async def dispatch(self, state: _Stage, ins: Instruction) -> None:
        handler = getattr(self, "_do_" + ins.cmd)
        try:
            if ins.cmd in _EXPAND and "_noexpand" not in ins.flags:
                env = self._env(state)
                args = [self.lexer.word(a, env) for a in ins.args]
                flags = {k: self.lexer.word(v, env) if k in ("chown", "chmod", "from") else v
                         for k, v in ins.flags.items()}
            else:
                args, flags = list(ins.args), dict(ins.flags)
        except DockerfileError as exc:
            raise BuildError(exc.message) from None
        await handler(state, ins, args, flags)

    def _shell(self, state: _Stage) -> list[str]:
        return list(state.config.get("Shell") or DEFAULT_SHELL)

    async def _meta_commit(self, state: _Stage, comment: str) -> None:
        """A config-only step: cache hit or a new image without a layer."""
        cache_config = dict(state.config, Cmd=self._shell(state) + ["#(nop) ", comment])
        if await self._probe(state, cache_config):
            return
        self._commit(state, None, cache_config)

    async def _probe(self, state: _Stage, cache_config: dict) -> bool:
        if self.opts.nocache or state.busted:
            return False
        key = _canonical(cache_config)
        candidates = [i for i in self.graph.images() if i.parent == state.image_id
                      and _canonical(i.config.get("container_config")) == key]
        sources = self._cache_sources
        if sources is not None:
            candidates = [i for i in candidates if sources.allows(i.id)]
        hit = max(candidates, key=lambda i: i.created) if candidates else None
        if hit is None and sources is not None:
            hit = sources.restore(state.image, " ".join(cache_config.get("Cmd") or []), state.config, cache_config)
        if hit is None:
            state.busted = True
            return False
        self.held.add(hit.id)
        if self.steps is not None:
            self.steps.cached(state.index)
        await self.out(" ---> Using cache\n")
        state.image = hit
        return True

    def _commit(self, state: _Stage, layer: Any, cache_config: dict, container_id: str = "") -> None:
        base = state.image.config if state.image else {}
        now = rfc3339.now()
        history = list(base.get("history") or [])
        entry: dict[str, Any] = {"created": now, "created_by": " ".join(cache_config.get("Cmd") or [])}
        if layer is None:
            entry["empty_layer"] = True
        history.append(entry)
        diff_ids = list((base.get("rootfs") or {}).get("diff_ids") or [])
        if layer is not None:
            diff_ids.append(layer.diff_id)
        config: dict[str, Any] = {
            **_platform_of(base, self.graph.platform), "config": state.config,
            "container": container_id, "container_config": cache_config, "created": now,
            "docker_version": "pyd", "history": history,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        if base.get("author") or state.config.get("_author"):
            config["author"] = base.get("author")
        data = json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode()
        state.image = self.graph.store_image(data, parent=state.image_id)
        self.held.add(state.image.id)
        state.config = copy.deepcopy(state.config)

    # ---- metadata instructions --------------------------------------------------------------------
    async def _do_env(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        env = list(state.config.get("Env") or [])
        parts = []
        for key, value in zip(args[::2], args[1::2]):
            if not key:
                raise BuildError("ENV names can not be blank")
            env = [e for e in env if e.partition("=")[0] != key]
            env.append(f"{key}={value}")
            parts.append(f"{key}={value}")
        state.config["Env"] = _merge_env_order(state.config.get("Env") or [], env)
        await self._meta_commit(state, "ENV " + " ".join(parts))

    async def _do_label(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        labels = dict(state.config.get("Labels") or {})
        parts = []
        for key, value in zip(args[::2], args[1::2]):
            if not key:
                raise BuildError("LABEL names can not be blank")
            labels[key] = value
            parts.append(f"{key}={value}")
        state.config["Labels"] = labels
        await self._meta_commit(state, "LABEL " + " ".join(parts))

    async def _do_maintainer(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        await self._meta_commit(state, "MAINTAINER " + args[0])

    async def _do_arg(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        env = self._env(state)
        parts = []
        for word in args:
            key, eq, default = word.partition("=")
            try:
                key = self.lexer.word(key, env)
                value = self.lexer.word(default, env) if eq else None
            except DockerfileError as exc:
                raise BuildError(exc.message) from None
            if value is None and self.meta_args.get(key) is not None:
                value = self.meta_args[key]   # `ARG X` in a stage takes the global default
            state.args[key] = value
            self.used_args.add(key)
            parts.append(key + (f"={value}" if eq else ""))
        await self._meta_commit(state, "ARG " + " ".join(parts))

    async def _do_cmd(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        cmd = args if ins.json else self._shell(state) + args
        state.config["Cmd"] = cmd
        if args:
            state.cmd_set = True
        await self._meta_commit(state, "CMD " + go_quote_list(cmd))

    async def _do_entrypoint(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        entry = args if ins.json else (self._shell(state) + args if args else [])
        state.config["Entrypoint"] = entry or None
        if not state.cmd_set:
            state.config["Cmd"] = None   # an ENTRYPOINT drops the CMD inherited from the base image
        await self._meta_commit(state, "ENTRYPOINT " + go_quote_list(entry))

    async def _do_shell(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        if not args:
            raise BuildError("SHELL requires at least one argument")
        state.config["Shell"] = args
        await self._meta_commit(state, "SHELL [" + " ".join(args) + "]")

    async def _do_user(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        state.config["User"] = args[0]
        await self._meta_commit(state, "USER " + args[0])

    async def _do_stopsignal(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        from pyd.daemon.containers.service import parse_signal
        try:
            parse_signal(args[0])
        except BadParameter as exc:
            raise BuildError(exc.message) from None
        state.config["StopSignal"] = args[0]
        await self._meta_commit(state, "STOPSIGNAL " + args[0])

    async def _do_expose(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        ports = dict(state.config.get("ExposedPorts") or {})
        added = []
        for spec in args:
            port, _, proto = spec.partition("/")
            proto = (proto or "tcp").lower()
            low, _, high = port.partition("-")
            if not low.isdigit() or (high and not high.isdigit()) or proto not in ("tcp", "udp", "sctp"):
                raise BuildError(f"invalid containerPort: {spec}")
            for p in range(int(low), int(high or low) + 1):
                ports[f"{p}/{proto}"] = {}
                added.append(f"{p}/{proto}")
        state.config["ExposedPorts"] = ports
        await self._meta_commit(state, "EXPOSE " + " ".join(sorted(added)))

    async def _do_volume(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        volumes = dict(state.config.get("Volumes") or {})
        for path in args:
            if not path.strip():
                raise BuildError("VOLUME specified can not be an empty string")
            volumes[path] = {}
        state.config["Volumes"] = volumes
        await self._meta_commit(state, "VOLUME [" + " ".join(args) + "]")

    async def _do_onbuild(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        trigger = re.sub(r"(?i)^\s*ONBUILD\s*", "", ins.original) if ins.original else args[0]
        state.config["OnBuild"] = list(state.config.get("OnBuild") or []) + [trigger]
        await self._meta_commit(state, "ONBUILD " + trigger)

    async def _do_healthcheck(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        kind, rest = args[0], args[1:]
        if kind == "NONE":
            if rest or flags:
                raise BuildError("HEALTHCHECK NONE takes no arguments")
            state.config["Healthcheck"] = {"Test": ["NONE"]}
        elif kind == "CMD":
            if not rest:
                raise BuildError("Missing command after HEALTHCHECK CMD")
            health: dict[str, Any] = {"Test": (["CMD"] + rest) if ins.json else ["CMD-SHELL"] + rest}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                ns = parse_duration(flags.get(flag, ""), flag)
                if ns:
                    health[key] = ns
            if flags.get("retries"):
                try:
                    retries = int(flags["retries"])
                except ValueError:
                    raise BuildError(f'strconv.ParseInt: parsing "{flags["retries"]}": invalid syntax') from None
                if retries < 1:
                    raise BuildError(f"--retries must be at least 1 (not {retries})")
                health["Retries"] = retries
            old = (state.config.get("Healthcheck") or {}).get("Test") or []
            if old and old[0] != "NONE":
                await self.out(f"Note: overriding previous HEALTHCHECK: {go_quote_list(old)}\n")
            state.config["Healthcheck"] = health
        else:
            raise BuildError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
        await self._meta_commit(state, "HEALTHCHECK " + json.dumps(state.config["Healthcheck"]))

    async def _do_workdir(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        workdir = posixpath.normpath(posixpath.join("/", state.config.get("WorkingDir") or "/", args[0]))
        state.config["WorkingDir"] = workdir
        cache_config = dict(state.config, Cmd=self._shell(state) + ["#(nop) ", "WORKDIR " + workdir])
        if await self._probe(state, cache_config):
            return
        layer = await self._in_scratch_layer(state, lambda root: copying.mkdir_in(root, workdir, 0, 0))
        self._commit(state, layer, cache_config)

    # ---- RUN --------------------------------------------------------------------------------------
    async def _do_run(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        if not state.image_id:
            raise BuildError("Please provide a source image with `from` prior to run")
        env = self._env(state)
        try:
            mounts = [runmounts.parse(spec, lambda v: self.lexer.word(v, env), state.config.get("WorkingDir") or "/")
                      for spec in ins.lists.get("mount", [])]
        except (runmounts.MountError, DockerfileError) as exc:
            raise BuildError(getattr(exc, "message", None) or str(exc)) from None
        await self._fetch_secrets(mounts)
        network = self._run_network(flags)
        script = run_heredocs.script(ins, args)
        argv = script.argv if ins.json else self._shell(state) + script.argv
        env_keys = {e.partition("=")[0] for e in state.config.get("Env") or []}
        values = self._arg_values(state)
        build_env = [f"{k}={v}" for k, v in values.items() if v is not None and k not in env_keys]
        ssh = [m for m in mounts if m.type == "ssh"]
        if ssh and "SSH_AUTH_SOCK" not in env_keys:     # BuildKit points it at the first agent socket
            build_env.append(f"SSH_AUTH_SOCK={ssh[0].target}")
        keyed = sorted(f"{k}={v}" for k, v in values.items()
                       if v is not None and k not in env_keys and (k in state.args or k not in PROXY_ARGS))
        save_cmd = ([f"|{len(keyed)}", *keyed] + argv) if build_env else argv
        run_flags = [f"--mount={await self._mount_key(state, m)}" for m in mounts]
        if flags.get("network"):
            run_flags.append(f"--network={flags['network']}")
        if script.file is not None:
            run_flags.append("--heredoc=sha256:" + hashlib.sha256(script.file[1].encode()).hexdigest())
        cache_config = dict(state.config, Cmd=run_flags + save_cmd)
        if await self._probe(state, cache_config):
            return
        host_config: dict[str, Any] = {"NetworkMode": network,
                                       "LogConfig": {"Type": "none", "Config": {}}}
        if self.opts.extrahosts:
            host_config["ExtraHosts"] = list(self.opts.extrahosts)
        if self.opts.shmsize:
            host_config["ShmSize"] = self.opts.shmsize
        if self.opts.memory:
            host_config["Memory"] = self.opts.memory
        made = runmounts.Mounted(mounts, context=self.context, data_root=self.graph.root, tmp=self.graph.tmp,
                                 secrets=self.opts.secrets, open_root=self._open_root,
                                 open_agent=self.opts.ssh_source)
        try:
            async with made as api_mounts, run_heredocs.ScriptFile(script, self.graph.tmp) as script_mount:
                host_config["Mounts"] = api_mounts + script_mount
                await self._run_step(state, argv, body_env=build_env, host_config=host_config,
                                     cache_config=cache_config, stubs=[m["Target"] for m in host_config["Mounts"]])
        except runmounts.MountError as exc:
            raise BuildError(str(exc)) from None

    def _run_network(self, flags: dict) -> str:
        network = flags.get("network", "default")
        if network == "host":
            raise BuildError("granting entitlement network.host is not allowed by build daemon configuration")
        if network not in ("default", "none"):
            raise BuildError(f'invalid network mode "{network}"')
        security = flags.get("security", "sandbox")
        if security == "insecure":
            raise BuildError("granting entitlement security.insecure is not allowed by build daemon configuration")
        if security != "sandbox":
            raise BuildError(f'unsupported security mode "{security}"')
        return "none" if network == "none" else (self.opts.networkmode or "default")

    async def _fetch_secrets(self, mounts: list[runmounts.RunMount]) -> None:
        source = self.opts.secret_source
        if source is None:
            return
        for m in mounts:
            if m.type == "secret" and m.id not in self.opts.secrets:
                data = await source(m.id)
                if data is not None:
                    self.opts.secrets[m.id] = data

    async def _mount_key(self, state: _Stage, m: runmounts.RunMount) -> str:
        """The cache's view of a mount: its spec, and for a bind what it binds (the content, or the image)."""
        key = m.key()
        if m.type not in ("bind", "cache") or (m.type == "cache" and not m.from_):
            return key
        if m.from_:
            image, directory = await self._source(m.from_)
            if directory:
                source = archive.secure_join(directory, m.source.lstrip("/")) if m.source.strip("/") else directory
                if not os.path.lexists(source):
                    return key
                return key + "," + await asyncio.to_thread(copying.hash_sources, [(source, ".")])
            return key + f",image={image.id if image else 'scratch'}"
        rel = m.source.lstrip("/") or "."
        path = archive.secure_join(self.context, rel) if rel != "." else self.context
        if not os.path.lexists(path):
            return key
        return key + "," + await asyncio.to_thread(copying.hash_sources, [(path, rel)])

    async def _open_root(self, ref: str) -> tuple[str, Callable[[], Awaitable[None]]]:
        """A stage's or an image's root filesystem, mounted until close() (RUN --mount from=)."""
        image, directory = await self._source(ref)
        if directory:
            async def nothing() -> None:
                return None
            return directory, nothing
        return await self._open_root_of(image)

    async def _run_step(self, state: _Stage, argv: list[str], *, body_env: list[str], host_config: dict,
                        cache_config: dict, stubs: list[str]) -> None:
        """Run argv in a container of the current image and commit its changes (mount points it had to make
        for the step's mounts left out)."""
        containers = self.containers
        body = {"Image": state.image_id, "Cmd": argv, "Entrypoint": [""],
                "Env": list(state.config.get("Env") or []) + body_env,
                "WorkingDir": state.config.get("WorkingDir") or "", "User": state.config.get("User") or "",
                "Labels": dict(state.config.get("Labels") or {}), "HostConfig": host_config}
        try:
            created = await containers.create(None, body)
        except HTTPError as exc:
            raise BuildError(exc.message) from None
        cid = created["Id"]
        await self.out(f" ---> Running in {cid[:12]}\n")
        ok = cancelled = False
        try:
            made = await asyncio.to_thread(self._missing_paths, cid, stubs) if stubs else []
            code = await self._run_container(cid, state.index)
            if code != 0:
                raise BuildError(f"The command '{' '.join(argv)}' returned a non-zero code: {code}", code)
            if made:
                await asyncio.to_thread(self._remove_stubs, cid, made)
            layer = await asyncio.to_thread(self.graph.commit_rw, cid)
            self._commit(state, layer, cache_config, cid)
            ok = True
        except asyncio.CancelledError:      # another stage failed, or the client went: not a step's failure
            cancelled = True
            raise
        finally:
            if self.opts.forcerm or cancelled or (self.opts.rm and ok):
                try:
                    await containers.remove(cid, force=True, volumes=True)   # its VOLUMEs' changes go too
                    if ok:
                        await self.out(f" ---> Removed intermediate container {cid[:12]}\n")
                except Exception as exc:  # the build result stands; say why the container stayed
                    await self.out(f"Error removing intermediate container {cid[:12]}: {exc}\n")

    def _missing_paths(self, cid: str, targets: list[str]) -> list[str]:
        """The mount targets (and their parents) the container's root lacks: execd will make them."""
        root = self.graph.mount_rw(cid)
        try:
            missing: list[str] = []
            for target in targets:
                path = ""
                for part in [p for p in target.split("/") if p]:
                    path += "/" + part
                    if path not in missing and not os.path.lexists(archive.secure_join(root, path.lstrip("/"))):
                        missing.append(path)
            return missing
        finally:
            self.graph.unmount_rw(cid)

    def _remove_stubs(self, cid: str, made: list[str]) -> None:
        """Remove the empty mount points the step's mounts left (deepest first), as BuildKit does."""
        root = self.graph.mount_rw(cid)
        try:
            for path in sorted(made, key=lambda p: p.count("/"), reverse=True):
                host = archive.secure_join(root, path.lstrip("/"))
                try:
                    if os.path.isdir(host) and not os.path.islink(host):
                        os.rmdir(host)
                    elif os.path.isfile(host) and os.path.getsize(host) == 0:
                        os.unlink(host)
                except OSError:
                    pass    # the step wrote into it: it stays
        finally:
            self.graph.unmount_rw(cid)

    async def _run_container(self, cid: str, stage_index: int) -> int:
        containers = self.containers
        c = containers.get(cid)
        queue: asyncio.Queue = asyncio.Queue()
        containers.subscribe(c, queue)
        decoders = {1: codecs.getincrementaldecoder("utf-8")("replace"),
                    2: codecs.getincrementaldecoder("utf-8")("replace")}
        try:
            try:
                await containers.start(cid)
            except Exception as exc:
                raise BuildError(getattr(exc, "message", str(exc)), 0) from None
            while True:
                item = await queue.get()
                if item is None:
                    break
                stream, data = item
                if self.steps is not None:
                    await self.steps.log(stage_index, stream, data)
                    continue
                text = decoders.get(stream, decoders[1]).decode(data)
                if text:     # dockerd colours each write of a step's stderr red
                    await self.out(f"\x1b[91m{text}\x1b[0m" if stream == 2 else text)
        finally:
            containers.unsubscribe(c, queue)
        result = await containers.wait(cid)
        return int(result.get("StatusCode") or 0)

    # ---- COPY / ADD -------------------------------------------------------------------------------
    async def _do_copy(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        await self._copy(state, ins, "COPY", args, flags, extract=False)

    async def _do_add(self, state: _Stage, ins: Instruction, args: list[str], flags: dict) -> None:
        await self._copy(state, ins, "ADD", args, flags, extract=True)

    async def _copy(self, state: _Stage, ins: Instruction, what: str, args: list[str], flags: dict,
                    extract: bool) -> None:
        srcs, dest = args[:-1], args[-1]
        env = self._env(state)
        docs = {d.name: d for d in ins.heredocs}
        inline: list[dockerfile.Heredoc] = []
        urls: list[str] = []
        paths: list[str] = []
        for raw, src in zip(ins.args[:-1], srcs):
            doc = dockerfile.parse_heredoc(raw, self.lexer.escape) if docs else None
            if doc is not None and doc.name in docs:
                inline.append(docs[doc.name])
            elif remote.is_git(src):
                raise BuildError(f"{what} failed: {src}: git sources are not supported by this daemon")
            elif re.match(r"^[a-z][a-z0-9+.-]*://", src, re.I):
                if what == "COPY":
                    raise BuildError("source can't be a URL for COPY")
                if not remote.is_url(src):
                    raise BuildError(f"{what} failed: {src}: unsupported URL scheme")
                urls.append(src)
            else:
                paths.append(src)
        checksum = flags.get("checksum", "")
        if checksum:
            if len(srcs) != 1:
                raise BuildError("checksum can't be specified for multiple sources")
            if not urls:
                raise BuildError("checksum requires HTTP(S) or Git sources")
            try:
                checksum = remote.parse_checksum(self.lexer.word(checksum, env))
            except remote.FetchError as exc:
                raise BuildError(exc.message) from None
        try:
            excludes = [self.lexer.word(p, env) for p in ins.lists.get("exclude", [])]
        except DockerfileError as exc:
            raise BuildError(exc.message) from None
        exclude = dockerignore.Matcher(excludes) if excludes else None
        parents = flags.get("parents", "false") != "false"
        source_image, source_dir = None, ""
        from_ref = flags.get("from", "")
        if from_ref:
            source_image, source_dir = await self._source(from_ref)
        workdir = state.config.get("WorkingDir") or "/"
        dest_is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.") or parents
        if not posixpath.isabs(dest):
            dest = posixpath.join("/", workdir, dest)
        dest_norm = posixpath.normpath(dest)
        mode = None
        if flags.get("chmod"):
            try:
                mode = int(flags["chmod"], 8)
            except ValueError:
                raise BuildError(f"invalid chmod parameter: {flags['chmod']}") from None
            if mode > 0o7777:
                raise BuildError(f"invalid chmod parameter: {flags['chmod']}")
        chown = flags.get("chown", "")

        async def with_source_root(fn):
            if not from_ref or source_dir:
                return await asyncio.to_thread(fn, source_dir or self.context)
            root, close = await self._open_root_of(source_image)
            try:
                return await asyncio.to_thread(fn, root)
            finally:
                await close()

        def resolve(root: str) -> list[copying.Found]:
            return copying.resolve_sources(root, paths, what, bool(from_ref), parents, exclude)

        extra = tempfile.mkdtemp(prefix="build-inline-", dir=self.graph.tmp)   # heredoc files, downloads
        try:
            extras: list[copying.Found] = []
            for doc in inline:
                try:
                    data = dockerfile.Lexer.expand_only(doc.text(), env) if doc.expand else doc.text()
                except DockerfileError as exc:
                    raise BuildError(exc.message) from None
                extras.append(await asyncio.to_thread(_inline_file, extra, doc.name, data))
            for url in urls:
                folder = tempfile.mkdtemp(dir=extra)
                try:
                    path = await remote.fetch(url, folder, checksum)
                except remote.FetchError as exc:
                    raise BuildError(exc.message) from None
                extras.append(copying.Found(path, os.path.relpath(path, extra)))

            def resolve_and_hash(root: str) -> tuple[list[copying.Found], str]:
                found = resolve(root)
                if (len(srcs) > 1 or len(found) + len(extras) > 1) and not dest_is_dir:
                    raise copying.CopyError(f"When using {what} with more than one source file, the destination "
                                            "must be a directory and end with a /")
                return found, copying.hash_sources(found + extras, exclude)

            try:
                found, digest = await with_source_root(resolve_and_hash)
            except copying.CopyError as exc:
                raise BuildError(exc.message) from None
            src_from = f"--from={source_image.id if source_image else from_ref} " if from_ref else ""
            extras_text = (f"--chown={chown} " if chown else "") + (f"--chmod={flags['chmod']} " if mode is not None else "")
            extras_text += ("--parents " if parents else "") + "".join(f"--exclude={p} " for p in excludes)
            comment = f"{what} {src_from}{extras_text}{digest} in {dest} "
            cache_config = dict(state.config, Cmd=self._shell(state) + ["#(nop) ", comment])
            if await self._probe(state, cache_config):
                return

            def write(src_root: str):
                def into(rootfs: str) -> None:
                    uid, gid = copying.chown_ids(rootfs, chown)
                    found_now = resolve(src_root)
                    many = dest_is_dir or len(found_now) + len(extras) > 1
                    for f in found_now:
                        copying.copy_one(f.path, rootfs, dest_norm, many, uid, gid, mode,
                                         extract and not from_ref, exclude, f.rel, f.keep)
                    for f in extras:
                        copying.copy_one(f.path, rootfs, dest_norm, many, uid, gid, mode, False)
                return into

            try:
                layer = await self._copy_into_layer(state, with_source_root, write)
            except copying.CopyError as exc:
                raise BuildError(exc.message) from None
            self._commit(state, layer, cache_config)
        finally:
            await asyncio.to_thread(shutil.rmtree, extra, True)

    async def _open_root_of(self, image: "Image | None") -> tuple[str, Callable[[], Awaitable[None]]]:
        """An image's root filesystem mounted (an empty folder for scratch) until close()."""
        if image is None:
            empty = tempfile.mkdtemp(prefix="build-empty-", dir=self.graph.tmp)

            async def drop() -> None:
                await asyncio.to_thread(shutil.rmtree, empty, True)
            return empty, drop
        rw_id = "build-src-" + os.urandom(16).hex()
        await asyncio.to_thread(self.graph.create_rw, rw_id, image.id)
        try:
            root = await asyncio.to_thread(self.graph.mount_rw, rw_id)
        except BaseException:
            await asyncio.to_thread(self.graph.remove_rw, rw_id)
            raise

        async def close() -> None:
            try:
                await asyncio.to_thread(self.graph.unmount_rw, rw_id)
            finally:
                await asyncio.to_thread(self.graph.remove_rw, rw_id)
        return root, close

    async def _copy_into_layer(self, state: _Stage, with_source_root, write) -> Any:
        rw_id = "build-" + os.urandom(16).hex()
        await asyncio.to_thread(self.graph.create_rw, rw_id, state.image_id or None)
        try:
            rootfs = await asyncio.to_thread(self.graph.mount_rw, rw_id)
            try:
                await with_source_root(lambda src_root: write(src_root)(rootfs))
            finally:
                await asyncio.to_thread(self.graph.unmount_rw, rw_id)
            return await asyncio.to_thread(self.graph.commit_rw, rw_id)
        finally:
            await asyncio.to_thread(self.graph.remove_rw, rw_id)

    async def _in_scratch_layer(self, state: _Stage, fn: Callable[[str], None]) -> Any:
        """Run fn(rootfs) on a throw-away read-write layer of the current image; commit what it changed."""
        rw_id = "build-" + os.urandom(16).hex()
        await asyncio.to_thread(self.graph.create_rw, rw_id, state.image_id or None)
        try:
            rootfs = await asyncio.to_thread(self.graph.mount_rw, rw_id)
            try:
                await asyncio.to_thread(fn, rootfs)
            finally:
                await asyncio.to_thread(self.graph.unmount_rw, rw_id)
            return await asyncio.to_thread(self.graph.commit_rw, rw_id)
        finally:
            await asyncio.to_thread(self.graph.remove_rw, rw_id)


# ---------------------------------------------------------------------------------------------------
# helpers (pure or file-level)

def _default_config() -> dict:
    return {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
            "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
            "Labels": None}


def _canonical(config: Any) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def _merge_env_order(old: list[str], new: list[str]) -> list[str]:
    """ENV replaces a variable in place (dockerd keeps its position) and appends new ones."""
    values = dict(e.partition("=")[::2] for e in new)
    out, seen = [], set()
    for e in old:
        k = e.partition("=")[0]
        if k in values and k not in seen:
            out.append(f"{k}={values[k]}")
            seen.add(k)
    for e in new:
        k = e.partition("=")[0]
        if k not in seen:
            out.append(e)
            seen.add(k)
    return out


def _platform_of(base: dict, host: Platform) -> dict[str, str]:
    """A built image is for its base image's platform; FROM scratch, for this machine's."""
    return config_fields(image_platform(base) if base.get("architecture") else host)


def _inline_file(folder: str, name: str, data: str) -> copying.Found:
    """A COPY heredoc as a file (mode 0644, as BuildKit makes it) named after its delimiter."""
    rel = posixpath.normpath(name.lstrip("/")) or "inline"
    path = archive.secure_join(folder, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(data)
    os.chmod(path, 0o644)
    return copying.Found(path, rel)
