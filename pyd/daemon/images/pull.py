"""The daemon's pull: sessions built from its registry settings, Docker Hub names tried on each
--registry-mirror first (as dockerd does), one Puller per endpoint. Used by POST /images/create and by the
builder's FROM."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyd.daemon.images.distribution import DistributionMetadata
from pyd.daemon.errors import HTTPError
from pyd.formats.reference import Reference, parse_reference

if TYPE_CHECKING:
    from pyd.daemon.images.registry import AuthConfig, Emit, RegistrySession
    from pyd.daemon.storage.graph import Graph, Image

log = logging.getLogger("pyd.registry")


@dataclass(frozen=True)
class RegistrySettings:
    """The daemon flags the registry client reads."""
    tmp_dir: str                                                   # data-root/tmp: downloads and uploads spool there
    insecure_registries: list[str] = field(default_factory=list)
    certs_dirs: list[str] = field(default_factory=list)            # empty: /etc/pyd/certs.d, /etc/docker/certs.d
    mirrors: list[str] = field(default_factory=list)
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    upload_chunk_size: int = 16 << 20


class PullService:
    """Pulls into the graph. The registry client is imported by the first registry operation, not by an
    idle daemon."""

    def __init__(self, graph: Graph, settings: RegistrySettings) -> None:
        self.graph = graph
        self.settings = settings
        self._meta: DistributionMetadata | None = None

    def meta(self) -> DistributionMetadata:
        """The daemon's one DistributionMetadata (its lock orders the writes of concurrent pulls and
        pushes), made by the first registry operation."""
        if self._meta is None:
            self._meta = DistributionMetadata(self.graph.meta)
        return self._meta

    def session(self, domain: str, auth: AuthConfig, mirror: str | None = None) -> RegistrySession:
        from pyd.daemon.images import registry
        return registry.RegistrySession(domain, auth, self.settings.insecure_registries,
                                        certs=self.settings.certs_dirs or None, mirror=mirror)

    async def pull(self, ref: Reference, auth: AuthConfig, emit: Emit, platform: str = "") -> None:
        """Pull `ref` into the graph, progress as Docker's JSON messages through `emit`. A mirror that
        fails for any reason hands over to the next endpoint; the last endpoint's error is the answer."""
        from pyd.daemon.images import registry
        opts = registry.PullOptions(platform=platform, max_concurrent=self.settings.max_concurrent_downloads,
                                    tmp_dir=self.settings.tmp_dir, host=self.graph.platform)
        endpoints = registry.pull_endpoints(ref.domain, self.settings.mirrors)
        for mirror in endpoints:
            try:
                async with self.session(ref.domain, auth, mirror) as s:
                    await registry.Puller(s, self.graph, self.meta(), emit, opts).pull(ref)
                return
            except (HTTPError, OSError) as exc:
                if mirror is None:
                    raise
                log.info("pull of %s from mirror %s failed (%s): trying the next endpoint", ref, mirror,
                         getattr(exc, "message", "") or exc)

    async def pull_for_build(self, name: str, auth_configs: dict[str, dict], emit: Emit | None) -> Image:
        """FROM (or COPY --from) an image that is not here: pull it as the classic builder does, the pull's
        progress messages in the build's output (none when `emit` is None, as with build -q)."""
        ref = parse_reference(name)

        async def drop(msg: dict) -> None:
            return None
        await self.pull(ref, auth_for(auth_configs, ref.domain), emit or drop)
        return self.graph.resolve_image(str(ref))


def auth_for(configs: dict[str, dict], domain: str) -> AuthConfig:
    """The credentials for `domain` among X-Registry-Config's (keys "host:port", "https://host/v1/", ...)."""
    from pyd.daemon.images import registry

    def hostname(key: str) -> str:
        host = key.split("://", 1)[-1].split("/", 1)[0]
        return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host
    for key, value in (configs or {}).items():
        if isinstance(value, dict) and hostname(key) == domain:
            return registry.auth_from_json(value)
    return registry.AuthConfig()


def decode_registry_config(value: str | None) -> dict[str, dict]:
    """X-Registry-Config (POST /build): base64url JSON {registry: auth config}; {} when absent or bad."""
    import base64
    import json
    if not value:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)) or b"{}")
    except (ValueError, TypeError):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}
