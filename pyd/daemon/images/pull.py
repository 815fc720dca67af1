"""The daemon's pull: sessions built from its registry settings, Docker Hub names tried on each
--registry-mirror first (as dockerd does), one Puller per endpoint. Used by POST /images/create and by the
builder's FROM."""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from pyd.daemon.images import registry
from pyd.daemon.images.distribution import DistributionMetadata
from pyd.daemon.errors import HTTPError
from pyd.formats.reference import Reference, parse_reference

if TYPE_CHECKING:
    from pyd.daemon.main import Daemon
    from pyd.daemon.storage.graph import Image

log = logging.getLogger("pyd.registry")


def dist_meta(daemon: "Daemon") -> DistributionMetadata:
    """The daemon's one DistributionMetadata (its lock orders the writes of concurrent pulls and pushes)."""
    meta = getattr(daemon, "distribution_meta", None)
    if meta is None:
        meta = DistributionMetadata(daemon.graph.meta)
        daemon.distribution_meta = meta
    return meta


def session(daemon: "Daemon", domain: str, auth: registry.AuthConfig,
            mirror: str | None = None) -> registry.RegistrySession:
    return registry.RegistrySession(domain, auth, daemon.cfg.insecure_registries,
                                    certs=daemon.cfg.registry_certs_dirs or None, mirror=mirror)


async def pull_image(daemon: "Daemon", ref: Reference, auth: registry.AuthConfig, emit: registry.Emit,
                     platform: str = "") -> None:
    """Pull `ref` into the daemon's graph, progress as Docker's JSON messages through `emit`. A mirror that
    fails for any reason hands over to the next endpoint; the last endpoint's error is the answer."""
    opts = registry.PullOptions(platform=platform, max_concurrent=daemon.cfg.max_concurrent_downloads,
                                tmp_dir=os.path.join(daemon.cfg.data_root, "tmp"))
    endpoints = registry.pull_endpoints(ref.domain, getattr(daemon.cfg, "registry_mirrors", []))
    for mirror in endpoints:
        try:
            async with session(daemon, ref.domain, auth, mirror) as s:
                await registry.Puller(s, daemon.graph, dist_meta(daemon), emit, opts).pull(ref)
            return
        except (HTTPError, OSError) as exc:
            if mirror is None:
                raise
            log.info("pull of %s from mirror %s failed (%s): trying the next endpoint", ref, mirror,
                     getattr(exc, "message", "") or exc)


def auth_for(configs: dict[str, dict], domain: str) -> registry.AuthConfig:
    """The credentials for `domain` among X-Registry-Config's (keys "host:port", "https://host/v1/", ...)."""
    def hostname(key: str) -> str:
        host = key.split("://", 1)[-1].split("/", 1)[0]
        return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host
    for key, value in (configs or {}).items():
        if isinstance(value, dict) and hostname(key) == domain:
            return registry.auth_from_json(value)
    return registry.AuthConfig()


async def pull_for_build(daemon: "Daemon", name: str, auth_configs: dict[str, dict],
                         emit: registry.Emit | None) -> "Image":
    """FROM (or COPY --from) an image that is not here: pull it as the classic builder does, the pull's
    progress messages in the build's output (none when `emit` is None, as with build -q)."""
    ref = parse_reference(name)

    async def drop(msg: dict) -> None:
        return None
    await pull_image(daemon, ref, auth_for(auth_configs, ref.domain), emit or drop)
    return daemon.graph.resolve_image(str(ref))


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
