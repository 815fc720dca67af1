"""Distribution (OCI registry) client: ping, auth from WWW-Authenticate challenges, pull, push, login.

One RegistrySession talks to one registry for one operation: it keeps the credentials the client sent
(X-Registry-Auth), bearer tokens per scope, and a pooled AsyncClient. Pull and push report progress
as Docker's JSON messages through an `emit(dict)` coroutine.
"""
from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import ipaddress
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from pyd import __version__
from pyd.daemon.errors import BadParameter, NotFound
from pyd.daemon.errors import HTTPError
from pyd.formats.platforms import (Platform, PlatformError, host_platform, image_platform, mismatch_message,
                                   parse_platform)
from pyd.formats.reference import DEFAULT_DOMAIN, Reference
from pyd.http.aclient import AsyncClient, AsyncClientResponse
from pyd.http.errors import IncompleteMessage
from pyd.http.parser import replayable
from pyd.http.urls import encode_query, join_url

if TYPE_CHECKING:
    from pyd.daemon.images.distribution import DistributionMetadata
    from pyd.daemon.storage.graph import Graph, LayerHold

log = logging.getLogger("pyd.registry")

Emit = Callable[[dict], Awaitable[None]]

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
              "application/vnd.docker.distribution.manifest.v1+prettyjws")
ACCEPT = ", ".join([MT_DOCKER_MANIFEST, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_OCI_INDEX])
_INDEXES = (MT_DOCKER_LIST, MT_OCI_INDEX)
_ZSTD_TYPES = ("application/vnd.oci.image.layer.v1.tar+zstd",)
DOCKER_HUB = "https://registry-1.docker.io"
_CHUNK = 1 << 20
_RESUME_ATTEMPTS = 5
UPLOAD_CHUNK = 16 << 20      # blobs above this are pushed in chunks (PATCH + Content-Range), the rest in one PUT
_PROGRESS_INTERVAL = 0.1


class RegistryError(HTTPError):
    """An error of the registry or of the way to it, with the status dockerd answers."""


def registry_error(status: int, message: str) -> RegistryError:
    err = RegistryError(message)
    err.status = status
    return err


# ---------------------------------------------------------------------------------------------------
# credentials and endpoints

@dataclass
class AuthConfig:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""
    server: str = ""

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)


def decode_auth_header(value: str | None) -> AuthConfig:
    """X-Registry-Auth: base64url JSON {"username", "password", "serveraddress", "identitytoken", ...}."""
    if not value:
        return AuthConfig()
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(raw or b"{}")
    except (ValueError, TypeError):
        return AuthConfig()   # dockerd ignores an undecodable header and goes anonymous
    return auth_from_json(data if isinstance(data, dict) else {})


def auth_from_json(data: dict) -> AuthConfig:
    return AuthConfig(str(data.get("username") or ""), str(data.get("password") or ""),
                      str(data.get("identitytoken") or ""), str(data.get("registrytoken") or ""),
                      str(data.get("serveraddress") or ""))


def _host_only(domain: str) -> str:
    if domain.startswith("["):
        return domain[1:domain.index("]")]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def is_insecure(domain: str, insecure: list[str] | None = None) -> bool:
    """dockerd's rule: loopback (127.0.0.0/8, ::1, localhost) and --insecure-registry entries (host[:port]
    or CIDR) are spoken to over plain HTTP."""
    host = _host_only(domain)
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and ip.is_loopback:
        return True
    for entry in insecure or []:
        entry = entry.strip()
        if entry.startswith(("http://", "https://")):
            entry = entry.split("://", 1)[1].rstrip("/")
        if entry in (domain, host):
            return True
        if ip is not None and "/" in entry:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def endpoint_for(domain: str, insecure: list[str] | None = None) -> str:
    if domain == DEFAULT_DOMAIN:
        return DOCKER_HUB
    return ("http://" if is_insecure(domain, insecure) else "https://") + domain


def normalize_mirror(value: str) -> str:
    """A --registry-mirror as dockerd keeps it ("http://host:port/"), or ValueError with dockerd's words."""
    from urllib.parse import urlsplit
    try:
        uri = urlsplit(value)
        uri.port   # noqa: B018  (a bad port raises here)
    except ValueError:
        raise ValueError(f'invalid mirror: "{value}" is not a valid URI') from None
    if uri.scheme not in ("http", "https"):
        raise ValueError(f'invalid mirror: unsupported scheme "{uri.scheme}" in "{value}"')
    if not uri.hostname:
        raise ValueError(f'invalid mirror: "{value}" is not a valid URI')
    if uri.query or uri.fragment:
        raise ValueError(f'invalid mirror: query or fragment at end of the URI "{value}"')
    if uri.username is not None or uri.password is not None:
        raise ValueError(f'invalid mirror: username/password not allowed in URI "{value}"')
    return value.rstrip("/") + "/"


def pull_endpoints(domain: str, mirrors: list[str] | None) -> list[str | None]:
    """Where dockerd pulls a name from, in order: each mirror for Docker Hub names, then the registry itself
    (None)."""
    return [*(mirrors or [])] + [None] if domain == DEFAULT_DOMAIN else [None]


CERTS_DIRS = ("/etc/pyd/certs.d", "/etc/docker/certs.d")


def tls_context(domain: str, dirs: list[str] | None = None) -> Any:
    """dockerd's certs.d rule: <dir>/<host:port>/*.crt are extra CAs, *.cert + *.key a client pair.
    None when no directory has anything for this registry (the system CAs then apply)."""
    import ssl
    ctx = None
    for base in dirs or CERTS_DIRS:
        d = os.path.join(base, domain)
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            path = os.path.join(d, name)
            if name.endswith(".crt"):
                ctx = ctx or ssl.create_default_context()
                ctx.load_verify_locations(cafile=path)
            elif name.endswith(".cert"):
                key = path[:-len(".cert")] + ".key"
                if not os.path.exists(key):
                    raise registry_error(500, f"missing key {os.path.basename(key)} for client certificate {name}")
                ctx = ctx or ssl.create_default_context()
                ctx.load_cert_chain(path, key)
            elif name.endswith(".key") and not os.path.exists(path[:-len(".key")] + ".cert"):
                raise registry_error(500, f"missing client certificate {name[:-4]}.cert for key {name}")
    return ctx


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


def _error_from_body(status: int, body: bytes) -> tuple[str, str]:
    """(code, "code words: message") from a registry's {"errors": [...]} body."""
    try:
        errors = json.loads(body).get("errors") or []
        first = errors[0]
        code = str(first.get("code", ""))
        words = code.lower().replace("_", " ")
        return code, f"{words}: {first.get('message', '')}"
    except (ValueError, AttributeError, IndexError, TypeError):
        return "", f"unexpected status {status}: {body[:200].decode(errors='replace').strip()}"


# ---------------------------------------------------------------------------------------------------
# the session

@dataclass
class _Tokens:
    header: str | None = None                      # "Basic ..." or "Bearer ..." once known
    challenge: tuple[str, dict[str, str]] | None = None
    by_scope: dict[str, str] = field(default_factory=dict)


class RegistrySession:
    def __init__(self, domain: str, auth: AuthConfig | None = None, insecure: list[str] | None = None,
                 timeout: float = 60.0, certs: list[str] | None = None, mirror: str | None = None) -> None:
        import ssl
        if mirror:   # a --registry-mirror URL stands in for Docker Hub: its scheme is the one to speak
            domain = mirror.split("://", 1)[1].split("/", 1)[0]
        self.domain = domain
        self.insecure = domain != DEFAULT_DOMAIN and is_insecure(domain, insecure)
        self.base = endpoint_for(domain, insecure)
        self.auth = auth or AuthConfig()
        ctx = tls_context(domain, certs)
        if mirror:
            self.base = mirror.rstrip("/")
            self.insecure = False
            if self.base.startswith("https://") and is_insecure(domain, insecure):
                ctx = ctx or ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        if self.insecure:   # HTTPS first without verification, then plain HTTP (dockerd's order)
            ctx = ctx or ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.client = AsyncClient(timeout=timeout, ssl_context=ctx, user_agent=f"pyd-client/{__version__}")
        self._tokens = _Tokens()
        self._pinged = False
        self._ping_lock = asyncio.Lock()

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> "RegistrySession":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ---- transport and auth ---------------------------------------------------------------------

    async def _send(self, method: str, url: str, headers: dict | None = None, body: Any = None
                    ) -> AsyncClientResponse:
        try:
            return await self.client.request(method, url, headers=headers, body=body)
        except ConnectionRefusedError:
            host = url.split("://", 1)[1].split("/", 1)[0]
            raise registry_error(500, f'Get "{self.base}/v2/": dial tcp {host}: connect: connection refused') from None
        except asyncio.TimeoutError:
            raise registry_error(500, f'Get "{self.base}/v2/": net/http: request canceled while waiting for '
                                      "connection (Client.Timeout exceeded while awaiting headers)") from None
        except OSError as exc:
            import ssl
            if isinstance(exc, ssl.SSLCertVerificationError):
                why = "x509: certificate signed by unknown authority" if "self-signed" in str(exc) or \
                    "unable to get local issuer" in str(exc) else f"x509: {exc.verify_message}"
                raise registry_error(500, f'Get "{self.base}/v2/": tls: failed to verify certificate: {why}') from None
            if "wrong version number" in str(exc) or "record layer" in str(exc):
                raise registry_error(500, f'Get "{self.base}/v2/": http: server gave HTTP response to HTTPS '
                                          "client") from None
            import socket
            hostname = _host_only(self.domain) if self.domain != DEFAULT_DOMAIN else "registry-1.docker.io"
            if isinstance(exc, socket.gaierror):
                raise registry_error(500, f'Get "{self.base}/v2/": dial tcp: lookup {hostname}: '
                                          f"{exc.strerror or exc}") from None
            why = (exc.strerror or str(exc)).lower() if exc.errno else str(exc)
            raise registry_error(500, f'Get "{self.base}/v2/": dial tcp {self.domain}: connect: {why}') from None

    async def ping(self) -> None:
        """GET /v2/: learn the auth challenge (401) or that none is needed (200). Concurrent layer transfers
        all call this: the lock makes one of them decide the scheme while the others wait for it."""
        if self._pinged:
            return
        async with self._ping_lock:
            if not self._pinged:
                await self._ping()
                self._pinged = True

    async def _ping(self) -> None:
        if self.insecure:
            self.base = "https://" + self.domain
            try:
                resp = await self.client.request("GET", self.base + "/v2/")
            except (OSError, asyncio.TimeoutError) as exc:
                if isinstance(exc, ConnectionRefusedError):
                    self.base = "http://" + self.domain
                    raise registry_error(500, f'Get "{self.base}/v2/": dial tcp {self.domain}: connect: '
                                              "connection refused") from None
                log.debug("%s: no TLS (%s): plain HTTP", self.domain, exc)
                self.base = "http://" + self.domain
                resp = await self._send("GET", self.base + "/v2/")
        else:
            resp = await self._send("GET", self.base + "/v2/")
        await resp.read()
        if resp.status == 401:
            self._tokens.challenge = _parse_challenge(resp.headers.get("www-authenticate") or "")
        elif resp.status >= 500 or resp.status == 404:
            raise registry_error(500, f"error pinging registry {self.domain}: status {resp.status}")

    async def _authorization(self, scopes: list[str], force: bool = False) -> str | None:
        ch = self._tokens.challenge
        if ch is None:
            return None
        scheme, params = ch
        if scheme == "basic":
            if self.auth.empty:
                return None
            raw = f"{self.auth.username}:{self.auth.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        if scheme != "bearer":
            return None
        if self.auth.registry_token:
            return "Bearer " + self.auth.registry_token
        key = " ".join(sorted(scopes))
        if key in self._tokens.by_scope and not force:
            return self._tokens.by_scope[key]
        token = await self._fetch_token(params, scopes)
        self._tokens.by_scope[key] = "Bearer " + token
        return self._tokens.by_scope[key]

    async def _fetch_token(self, params: dict[str, str], scopes: list[str]) -> str:
        realm = params.get("realm")
        if not realm:
            raise registry_error(500, f"{self.domain}: bearer challenge without a realm")
        query: dict[str, Any] = {"scope": scopes} if scopes else {}
        if params.get("service"):
            query["service"] = params["service"]
        if self.auth.username:
            query["account"] = self.auth.username
        headers = {}
        if self.auth.username or self.auth.password:
            raw = f"{self.auth.username}:{self.auth.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        url = realm + ("&" if "?" in realm else "?") + encode_query(query)
        resp = await self._send("GET", url, headers=headers)
        body = await resp.read()
        if resp.status == 401:
            raise registry_error(401, "unauthorized: incorrect username or password" if headers
                                 else "unauthorized: authentication required")
        if resp.status != 200:
            raise registry_error(500, f"token server {realm} answered {resp.status}")
        try:
            data = json.loads(body)
            return data.get("token") or data["access_token"]
        except (ValueError, KeyError, TypeError):
            raise registry_error(500, f"token server {realm} sent no token") from None

    async def request(self, method: str, path: str, scopes: list[str], headers: dict | None = None,
                      body: Any = None) -> AsyncClientResponse:
        """A request to the registry with the right Authorization; one retry with fresh credentials on 401
        (when the body can be sent again)."""
        await self.ping()
        url = path if "://" in path else self.base + path
        for attempt in (0, 1):
            h = dict(headers or {})
            authz = await self._authorization(scopes, force=attempt > 0)
            if authz:
                h["Authorization"] = authz
            resp = await self._send(method, url, h, body)
            if resp.status != 401 or attempt or not replayable(body):
                return resp
            challenge = resp.headers.get("www-authenticate")
            await resp.read()
            if not challenge:
                return resp
            self._tokens.challenge = _parse_challenge(challenge)
        return resp

    async def check_login(self) -> None:
        """POST /auth: the credentials open /v2/ (401 otherwise)."""
        await self.ping()
        resp = await self.request("GET", "/v2/", [])
        await resp.read()
        if resp.status == 401:
            raise registry_error(401, f"login attempt to {self.base}/v2/ failed with status: 401 Unauthorized")
        if resp.status != 200:
            raise registry_error(500, f"login attempt to {self.base}/v2/ failed with status: {resp.status}")


# ---------------------------------------------------------------------------------------------------
# progress

def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


def progress_bar(current: int, total: int) -> str:
    """Docker's JSONProgress string: "[=====>      ]  1.2MB/3.4MB"."""
    if total <= 0:
        return f"{_human(current):>8}"
    width = 50
    filled = min(width, int(width * current / total))
    bar = "=" * filled + (">" if filled < width else "") + " " * max(0, width - filled - 1)
    return f"[{bar}] {_human(current):>8}/{_human(total)}"


class Progress:
    """Rate-limited "Downloading"/"Pushing" messages for one layer."""

    def __init__(self, emit: Emit, layer_id: str, action: str, total: int) -> None:
        self.emit, self.id, self.action, self.total = emit, layer_id, action, total
        self.current = 0
        self._last = 0.0

    async def update(self, n: int, force: bool = False) -> None:
        self.current += n
        now = time.monotonic()
        if force or now - self._last >= _PROGRESS_INTERVAL:
            self._last = now
            await self.emit({"status": self.action, "progressDetail": {"current": self.current, "total": self.total},
                             "progress": progress_bar(self.current, self.total), "id": self.id})


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


async def status(emit: Emit, text: str, layer_id: str | None = None) -> None:
    msg: dict[str, Any] = {"status": text}
    if layer_id is not None:
        msg["progressDetail"] = {}
        msg["id"] = layer_id
    await emit(msg)


# ---------------------------------------------------------------------------------------------------
# pull

@dataclass
class PullOptions:
    platform: str = ""               # "linux/arm64", "" = this machine
    max_concurrent: int = 3
    tmp_dir: str = "/tmp"
    host: Platform = field(default_factory=host_platform)

    def wanted(self) -> Platform:
        """The platform to pull: --platform's, else this machine's (linux/arm64/v8 on aarch64)."""
        return wanted_platform(self.platform, self.host)


def wanted_platform(spec: str, host: Platform) -> Platform:
    if not spec:
        return host
    try:
        return parse_platform(spec, host)
    except PlatformError as e:
        raise BadParameter(str(e)) from None


def pick_manifest(index: dict, want: Platform) -> dict:
    """The entry of a manifest list / OCI index for `want`: one of exactly its variant first (arm64's
    v8 is the same as none), else one that names no variant."""
    candidates = []
    for desc in index.get("manifests") or []:
        p = desc.get("platform") or {}
        if p.get("os") and p.get("architecture") and want.matches(p.get("os"), p.get("architecture"),
                                                                   p.get("variant")):
            candidates.append(desc)
    if not candidates:
        raise NotFound(f"no matching manifest for {want} in the manifest list entries")
    exact = [d for d in candidates if Platform(want.os, want.architecture, (d.get("platform") or {}).get("variant")
                                               or "").normalized_variant() == want.normalized_variant()]
    return (exact or candidates)[0]


def check_image_platform(ref: Reference, config: dict, opts: PullOptions) -> None:
    """A single-platform image must be for the wanted platform: dockerd refuses an amd64-only image on
    an arm64 host (or for --platform linux/arm64) rather than store what cannot run."""
    if not config.get("architecture"):
        return              # an old or hand-made config that says nothing: dockerd takes it
    want, actual = opts.wanted(), image_platform(config)
    if not want.matches(actual.os, actual.architecture, actual.variant):
        shown = want if opts.platform else want.without_default_variant()
        raise NotFound(mismatch_message(ref.familiar(), shown, actual))


class Puller:
    def __init__(self, session: RegistrySession, graph: "Graph", meta: "DistributionMetadata", emit: Emit,
                 opts: PullOptions) -> None:
        self.s, self.graph, self.meta, self.emit, self.opts = session, graph, meta, emit, opts

    def _translate(self, ref: Reference, status: int, body: bytes) -> HTTPError:
        code, text = _error_from_body(status, body)
        if status == 401 or code in ("DENIED", "UNAUTHORIZED"):
            if code == "UNAUTHORIZED" and not text.startswith("unauthorized"):
                text = f"unauthorized: {text}"
            return NotFound(f"pull access denied for {ref.familiar_name()}, repository does not exist or may "
                            f"require 'docker login': {text if code == 'DENIED' else 'denied: requested access to the resource is denied'}")
        if code == "MANIFEST_UNKNOWN" or (status == 404 and not code):
            return NotFound(f"manifest for {ref.familiar()} not found: {text if code else 'manifest unknown: manifest unknown'}")
        if code == "NAME_UNKNOWN":
            return NotFound(f"repository {ref.familiar_name()} not found: {text}")
        return registry_error(500 if status >= 500 or status < 400 else status, text)

    async def get_manifest(self, ref: Reference, reference: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest by tag or digest; the digest is verified when known."""
        scopes = [f"repository:{ref.path}:pull"]
        resp = await self.s.request("GET", f"/v2/{ref.path}/manifests/{reference}", scopes, {"Accept": ACCEPT})
        body = await resp.read()
        if resp.status != 200:
            raise self._translate(ref, resp.status, body)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise registry_error(500, f"manifest verification failed for digest {reference}")
        try:
            doc = json.loads(body)
        except ValueError:
            raise registry_error(500, f"invalid manifest for {ref.familiar()}") from None
        mt = doc.get("mediaType") or (resp.headers.get("content-type") or "").split(";")[0].strip()
        if not mt and "manifests" in doc:
            mt = MT_OCI_INDEX
        return body, mt or MT_OCI_MANIFEST, digest

    async def _get_blob_bytes(self, ref: Reference, digest: str, limit: int = 8 << 20) -> bytes:
        resp = await self.s.request("GET", f"/v2/{ref.path}/blobs/{digest}", [f"repository:{ref.path}:pull"])
        if resp.status != 200:
            raise self._translate(ref, resp.status, await resp.read())
        data = bytearray()
        async for chunk in resp.iter_chunks():
            data += chunk
            if len(data) > limit:
                resp.close()
                raise registry_error(500, f"blob {digest} is larger than {limit} bytes")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise registry_error(500, f"filesystem layer verification failed for digest {digest}")
        return bytes(data)

    async def pull(self, ref: Reference) -> None:
        """Pull ref; a reference with neither tag nor digest pulls every tag of the repository."""
        try:
            if ref.tag or ref.digest:
                await self._pull(ref)
            else:
                await self._pull_all_tags(ref)
        except RegistryError as exc:
            if exc.status != 401:
                raise
            # never 401 to the client: the docker CLI would prompt for a login
            raise NotFound(f"pull access denied for {ref.familiar_name()}, repository does not exist or may "
                           f"require 'docker login': {exc.message}") from None

    async def _pull_all_tags(self, ref: Reference) -> None:
        resp = await self.s.request("GET", f"/v2/{ref.path}/tags/list", [f"repository:{ref.path}:pull"])
        body = await resp.read()
        if resp.status != 200:
            raise self._translate(ref, resp.status, body)
        tags = sorted((json.loads(body) or {}).get("tags") or [])
        if not tags:
            raise NotFound(f"repository {ref.familiar_name()} not found: no tags")
        updated = False
        for tag in tags:
            updated |= await self._pull(ref.with_tag(tag), final_status=False)
        await status(self.emit, f"Status: Downloaded newer image for {ref.familiar_name()}" if updated
                     else f"Status: Image is up to date for {ref.familiar_name()}")

    async def _pull(self, ref: Reference, final_status: bool = True) -> bool:
        """One tag or digest; True when something new was stored."""
        from pyd.daemon.storage.graph import LayerHold
        reference = ref.digest or ref.tag or "latest"
        body, mt, top_digest = await self.get_manifest(ref, reference)
        if mt in MT_SCHEMA1:
            raise BadParameter(f"[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, "
                               f"schema 1 support is disabled. {ref.familiar()} uses it and cannot be pulled")
        manifest = json.loads(body)
        if mt in _INDEXES:
            desc = pick_manifest(manifest, self.opts.wanted())
            body, mt, _ = await self.get_manifest(ref, desc["digest"])
            manifest = json.loads(body)
        else:
            self.opts.wanted()      # a bad --platform is a 400 before anything is fetched
        await status(self.emit, f"Pulling from {ref.path}", reference)
        config_desc = manifest.get("config") or {}
        layers = manifest.get("layers") or []
        config_bytes = await self._get_blob_bytes(ref, config_desc["digest"])
        config = json.loads(config_bytes)
        check_image_platform(ref, config, self.opts)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(layers):
            raise registry_error(500, f"invalid manifest for {ref.familiar()}: {len(layers)} layers but "
                                      f"{len(diff_ids)} diff IDs in the image config")
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        existed = any(i.id == image_id for i in self.graph.images())
        hold = LayerHold()     # a failed pull leaves none of the layers it registered
        try:
            await self._fetch_layers(ref, layers, diff_ids, hold)
            await asyncio.to_thread(self.graph.store_image, config_bytes)
        finally:
            await asyncio.to_thread(self.graph.release, hold)
        named = ref.with_tag(ref.tag) if ref.tag and not ref.digest else None
        digest_ref = Reference(ref.domain, ref.path, None, top_digest)
        up_to_date = existed and (named is None or self._points_to(named, image_id))
        if named is not None:
            await asyncio.to_thread(self.graph.tag, image_id, str(named))
        await asyncio.to_thread(self.graph.tag, image_id, str(digest_ref), True)
        await status(self.emit, f"Digest: {top_digest}")
        shown = named.familiar() if named else digest_ref.familiar()
        if final_status:
            await status(self.emit, f"Status: Image is up to date for {shown}" if up_to_date
                         else f"Status: Downloaded newer image for {shown}")
        return not up_to_date

    def _points_to(self, ref: Reference, image_id: str) -> bool:
        try:
            return self.graph.resolve_image(str(ref)).id == image_id
        except HTTPError:
            return False

    async def _fetch_layers(self, ref: Reference, layers: list[dict], diff_ids: list[str], hold: LayerHold) -> None:
        from pyd.daemon.storage.graph import chain_id
        chains: list[str] = []
        for diff in diff_ids:
            chains.append(chain_id(chains[-1] if chains else None, diff))
        todo = []
        for i, desc in enumerate(layers):
            if desc.get("mediaType") in _ZSTD_TYPES and not _have_zstd():
                raise BadParameter(f"layer {desc['digest']} is zstd-compressed, which this daemon cannot "
                                   "decompress")
            if self.graph.hold_existing(hold, chains[i]):
                await status(self.emit, "Already exists", short(desc["digest"]))
            else:
                await status(self.emit, "Pulling fs layer", short(desc["digest"]))
                todo.append(i)
        sem = asyncio.Semaphore(max(1, self.opts.max_concurrent))
        blobs: dict[int, _GrowingBlob] = {}

        async def download(i: int) -> None:
            async with sem:
                await self._download(ref, layers[i], blobs[i])

        tasks: dict[int, asyncio.Future] = {}
        try:
            for i in todo:
                blobs[i] = _GrowingBlob(self.opts.tmp_dir)
                tasks[i] = asyncio.ensure_future(download(i))
            for i in range(len(layers)):
                if i not in tasks:
                    continue
                desc = layers[i]
                # the extraction follows the download (layers in order: its parent is applied by now)
                extracted, downloaded = await asyncio.gather(
                    self._extract(blobs[i], chains[i - 1] if i else None, diff_ids[i], desc, hold), tasks[i],
                    return_exceptions=True)
                for outcome in (downloaded, extracted):   # a failed download says why the extraction failed
                    if isinstance(outcome, BaseException):
                        raise outcome
                self.meta.add(diff_ids[i], desc["digest"], ref.name)
                await status(self.emit, "Pull complete", short(desc["digest"]))
        finally:
            for t in tasks.values():
                t.cancel()
            for blob in blobs.values():
                blob.finish(asyncio.CancelledError())   # an extraction still waiting for bytes gives up
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            for blob in blobs.values():
                _unlink(blob.path)

    async def _extract(self, blob: "_GrowingBlob", parent: str | None, diff_id: str, desc: dict,
                       hold: LayerHold) -> None:
        size = int(desc.get("size") or 0)
        lid = short(desc["digest"])
        await self.emit({"status": "Extracting", "progressDetail": {"current": 0, "total": size},
                         "progress": progress_bar(0, size), "id": lid})

        def apply() -> None:
            with io.BufferedReader(blob.reader(), 1 << 20) as f:
                self.graph.register_layer(f, parent, expected_diff_id=diff_id, hold=hold)
        t0 = time.monotonic()
        await asyncio.to_thread(apply)
        log.debug("layer %s (%d bytes) applied in %.3f s", desc["digest"], size, time.monotonic() - t0)
        await self.emit({"status": "Extracting", "progressDetail": {"current": size, "total": size},
                         "progress": progress_bar(size, size), "id": lid})

    async def _download(self, ref: Reference, desc: dict, blob: "_GrowingBlob") -> None:
        """Stream the blob to blob's temp file, hashing as it comes; a cut connection resumes with Range.
        The extraction may read the file as it grows; it sees the end only once the digest checked out."""
        digest, total = desc["digest"], int(desc.get("size") or 0)
        lid = short(digest)
        progress = Progress(self.emit, lid, "Downloading", total)
        h = hashlib.sha256()
        got, failures = 0, 0
        t0 = time.monotonic()
        try:
            with open(blob.path, "wb", buffering=0) as f:   # unbuffered: what `blob` says is written, is
                while True:
                    headers = {"Range": f"bytes={got}-"} if got else {}
                    try:
                        resp = await self.s.request("GET", f"/v2/{ref.path}/blobs/{digest}",
                                                    [f"repository:{ref.path}:pull"], headers)
                        if resp.status not in (200, 206):
                            raise self._translate(ref, resp.status, await resp.read())
                        if got and resp.status == 200:   # the server ignored Range: start over (same bytes)
                            f.seek(0)
                            f.truncate()
                            h, got, progress.current = hashlib.sha256(), 0, 0
                        async for chunk in resp.iter_chunks():
                            view = memoryview(chunk)
                            while view:
                                view = view[f.write(view):]
                            h.update(chunk)
                            got += len(chunk)
                            if total and got > total:   # never more than the manifest declares
                                resp.close()
                                raise registry_error(500, f"filesystem layer verification failed for digest "
                                                          f"{digest}: more than the {total} bytes its "
                                                          "descriptor declares")
                            blob.grew(got)
                            await progress.update(len(chunk))
                        break
                    except (ConnectionError, IncompleteMessage, asyncio.IncompleteReadError,
                            asyncio.TimeoutError) as exc:
                        failures += 1
                        if failures > _RESUME_ATTEMPTS:
                            raise registry_error(500, f"download of {digest} failed: {exc}") from None
                        log.info("download of %s cut at %d bytes (%s): resuming", digest, got, exc)
                        await self.emit({"status": f"Retrying in {failures} second{'s' if failures > 1 else ''}",
                                         "progressDetail": {}, "id": lid})
                        await asyncio.sleep(0.2 * failures)
            await progress.update(0, force=True)
            log.debug("blob %s (%d bytes) downloaded in %.3f s", digest, got, time.monotonic() - t0)
            await status(self.emit, "Verifying Checksum", lid)
            if "sha256:" + h.hexdigest() != digest:
                raise registry_error(500, f"filesystem layer verification failed for digest {digest}")
            blob.finish(None)
            await status(self.emit, "Download complete", lid)
        except BaseException as exc:
            blob.finish(exc)
            raise


def _have_zstd() -> bool:
    import importlib.util
    return importlib.util.find_spec("zstandard") is not None


class _GrowingBlob:
    """A blob being downloaded to a temp file, readable while it grows: an extraction follows the download
    instead of waiting for its end. A reader sees the end of the file only once the download finished and
    its digest checked out; a failed download fails the reader."""

    def __init__(self, tmp_dir: str) -> None:
        fd, self.path = _mkstemp(tmp_dir)
        os.close(fd)
        self.size = 0
        self.done = False
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def grew(self, size: int) -> None:
        with self.cond:
            self.size = size
            self.cond.notify_all()

    def finish(self, error: BaseException | None) -> None:
        with self.cond:
            if not self.done:
                self.done, self.error = True, error
            self.cond.notify_all()

    def reader(self) -> "_GrowingReader":
        return _GrowingReader(self)


class _GrowingReader(io.RawIOBase):
    """Reads a _GrowingBlob from its start, waiting for bytes that are not written yet."""

    def __init__(self, blob: _GrowingBlob) -> None:
        super().__init__()
        self.blob = blob
        self.pos = 0
        self.fd = os.open(blob.path, os.O_RDONLY | os.O_CLOEXEC)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        blob = self.blob
        with blob.cond:
            while self.pos >= blob.size and not blob.done:
                blob.cond.wait()
            if blob.error is not None:
                raise OSError(f"download failed: {blob.error}")
            n = min(len(b), blob.size - self.pos)
        if n <= 0:
            return 0
        got = os.preadv(self.fd, [memoryview(b)[:n]], self.pos)
        self.pos += got
        return got

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


def _mkstemp(tmp_dir: str) -> tuple[int, str]:
    import tempfile
    os.makedirs(tmp_dir, exist_ok=True)
    return tempfile.mkstemp(prefix="blob-", dir=tmp_dir)


def _read_at(path: str, offset: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)


def _range_end(value: str | None, default: int) -> int:
    """The next byte to send after a registry's "Range: 0-N" (N+1); "0-0" is an empty upload."""
    m = re.fullmatch(r"\s*(?:bytes=)?0-(\d+)\s*", value or "")
    if not m:
        return default
    end = int(m.group(1))
    return 0 if end == 0 and default == 0 else end + 1


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------------------------------
# push

class Pusher:
    def __init__(self, session: RegistrySession, graph: "Graph", meta: "DistributionMetadata", emit: Emit,
                 tmp_dir: str, max_concurrent: int = 5, chunk_size: int = UPLOAD_CHUNK) -> None:
        self.s, self.graph, self.meta, self.emit = session, graph, meta, emit
        self.tmp_dir, self.max_concurrent = tmp_dir, max_concurrent
        self.chunk_size = max(1, chunk_size)   # blobs larger than this go up in PATCH chunks of this size

    def _scopes(self, ref: Reference, extra_repo: str | None = None) -> list[str]:
        scopes = [f"repository:{ref.path}:pull,push"]
        if extra_repo:
            scopes.append(f"repository:{extra_repo}:pull")
        return scopes

    def _error(self, ref: Reference, status: int, body: bytes) -> HTTPError:
        code, text = _error_from_body(status, body)
        if status == 401 or code in ("DENIED", "UNAUTHORIZED"):
            return registry_error(401 if status == 401 else 403,
                                  "denied: requested access to the resource is denied" if code != "UNAUTHORIZED"
                                  else f"unauthorized: {text.split(': ', 1)[-1]}")
        return registry_error(500, text)

    async def push(self, ref: Reference) -> None:
        """Push one tag (ref.tag) of a local image."""
        try:
            await self._push(ref)
        except RegistryError as exc:
            if exc.status not in (401, 403):
                raise
            raise registry_error(500, exc.message) from None   # a 401 would make the docker CLI prompt

    async def _push(self, ref: Reference) -> None:
        image = self.graph.resolve_image(str(ref))
        chains, diff_ids = image.chain_ids(), image.diff_ids()
        for diff in diff_ids:
            await status(self.emit, "Preparing", short(diff))
        sem = asyncio.Semaphore(self.max_concurrent)

        async def one(chain: str, diff: str) -> dict:
            async with sem:
                return await self._push_layer(ref, chain, diff)

        descs = await asyncio.gather(*(one(c, d) for c, d in zip(chains, diff_ids)))
        config_bytes = self.graph.config_bytes(image.id)
        await self._ensure_blob(ref, image.id, config_bytes)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST,
            "config": {"mediaType": MT_DOCKER_CONFIG, "size": len(config_bytes), "digest": image.id},
            "layers": list(descs)}, indent=3).encode()
        resp = await self.s.request("PUT", f"/v2/{ref.path}/manifests/{ref.tag}", self._scopes(ref),
                                    {"Content-Type": MT_DOCKER_MANIFEST}, manifest)
        body = await resp.read()
        if resp.status not in (200, 201):
            raise self._error(ref, resp.status, body)
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        await asyncio.to_thread(self.graph.tag, image.id, str(Reference(ref.domain, ref.path, None, digest)), True)
        await status(self.emit, f"{ref.tag}: digest: {digest} size: {len(manifest)}")
        await self.emit({"progressDetail": {}, "aux": {"Tag": ref.tag, "Digest": digest, "Size": len(manifest)}})

    async def _head(self, ref: Reference, digest: str) -> int | None:
        resp = await self.s.request("HEAD", f"/v2/{ref.path}/blobs/{digest}", self._scopes(ref))
        await resp.read()
        if resp.status == 200:
            return int(resp.headers.get("content-length") or 0)
        return None

    async def _push_layer(self, ref: Reference, chain: str, diff: str) -> dict:
        lid = short(diff)
        sources = [e for e in self.meta.sources(diff) if e.get("SourceRepository", "").startswith(self.s.domain + "/")]
        for e in sources:   # the registry may already have it: in this repo, or in another one to mount from
            digest, repo_name = e["Digest"], e["SourceRepository"]
            if repo_name == ref.name:
                size = await self._head(ref, digest)
                if size is not None:
                    await status(self.emit, "Layer already exists", lid)
                    return {"mediaType": MT_DOCKER_LAYER, "size": size, "digest": digest}
                self.meta.remove(diff, digest, repo_name)
        for e in sources:
            digest, repo_name = e["Digest"], e["SourceRepository"]
            if repo_name == ref.name:
                continue
            from_path = repo_name[len(self.s.domain) + 1:]
            resp = await self.s.request("POST", f"/v2/{ref.path}/blobs/uploads/?mount={digest}&from={from_path}",
                                        self._scopes(ref, from_path))
            await resp.read()
            if resp.status == 201:
                self.meta.add(diff, digest, ref.name)
                size = await self._head(ref, digest) or 0
                await status(self.emit, f"Mounted from {from_path}", lid)
                return {"mediaType": MT_DOCKER_LAYER, "size": size, "digest": digest}
            if resp.status == 202 and resp.headers.get("location"):   # no mount: cancel the opened upload
                cancel = await self.s.request("DELETE", self._abs(resp.headers["location"]), self._scopes(ref))
                await cancel.read()
        path, digest, size = await asyncio.to_thread(self._compress, chain)
        try:
            if await self._head(ref, digest) is not None:
                await status(self.emit, "Layer already exists", lid)
            else:
                await self._upload(ref, digest, size, path, lid)
                await status(self.emit, "Pushed", lid)
        finally:
            _unlink(path)
        self.meta.add(diff, digest, ref.name)
        return {"mediaType": MT_DOCKER_LAYER, "size": size, "digest": digest}

    def _compress(self, chain: str) -> tuple[str, str, int]:
        """The layer's tar, gzipped into a temp file (mtime 0: the same layer always gives the same blob)."""
        _, chunks = self.graph.layer_tar(chain)
        fd, path = _mkstemp(self.tmp_dir)
        h = hashlib.sha256()

        class _Hashing:
            def __init__(self, f: Any) -> None:
                self.f = f

            def write(self, b: bytes) -> int:
                h.update(b)
                return self.f.write(b)

            def flush(self) -> None:
                self.f.flush()

        try:
            with os.fdopen(fd, "wb") as raw:
                with gzip.GzipFile(fileobj=_Hashing(raw), mode="wb", compresslevel=1, mtime=0) as gz:
                    for chunk in chunks:
                        gz.write(chunk)
            return path, "sha256:" + h.hexdigest(), os.path.getsize(path)
        except BaseException:
            _unlink(path)
            raise

    def _abs(self, location: str) -> str:
        return join_url(self.s.base + "/v2/", location)

    async def _start_upload(self, ref: Reference) -> str:
        resp = await self.s.request("POST", f"/v2/{ref.path}/blobs/uploads/", self._scopes(ref))
        body = await resp.read()
        if resp.status != 202 or not resp.headers.get("location"):
            raise self._error(ref, resp.status, body)
        return self._abs(resp.headers["location"])

    async def _upload(self, ref: Reference, digest: str, size: int, path: str, lid: str) -> None:
        """Monolithic upload: POST for a session, then one PUT with the whole blob and its digest; a blob
        larger than the chunk size goes up in chunks instead."""
        if size > self.chunk_size:
            await self._upload_chunked(ref, digest, size, path, lid)
            return
        location = await self._start_upload(ref)
        progress = Progress(self.emit, lid, "Pushing", size)

        async def body():
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    yield chunk
                    await progress.update(len(chunk))
        url = location + ("&" if "?" in location else "?") + "digest=" + digest
        resp = await self.s.request("PUT", url, self._scopes(ref),
                                    {"Content-Type": "application/octet-stream", "Content-Length": str(size)}, body())
        rbody = await resp.read()
        if resp.status not in (201, 204):
            raise self._error(ref, resp.status, rbody)

    async def _upload_chunked(self, ref: Reference, digest: str, size: int, path: str, lid: str) -> None:
        """The distribution spec's chunked flow: PATCH each chunk with its Content-Range, then PUT the digest.
        A failed chunk asks the registry how far it got (GET on the upload: Range 0-N) and goes on from
        N+1; an upload the registry no longer knows (or will not resume) starts over in a new session."""
        progress = Progress(self.emit, lid, "Pushing", size)
        scopes = self._scopes(ref)
        location, offset, failures = await self._start_upload(ref), 0, 0
        while True:
            try:
                if offset < size:
                    n = min(self.chunk_size, size - offset)
                    data = await asyncio.to_thread(_read_at, path, offset, n)
                    resp = await self.s.request("PATCH", location, scopes, {
                        "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + n - 1}",
                        "Content-Length": str(n)}, data)
                    rbody = await resp.read()
                    if resp.status == 202:
                        location = self._abs(resp.headers.get("location") or location)
                        offset = _range_end(resp.headers.get("range"), offset + n)
                        progress.current = offset
                        await progress.update(0)
                        continue
                else:
                    url = location + ("&" if "?" in location else "?") + "digest=" + digest
                    resp = await self.s.request("PUT", url, scopes, {"Content-Type": "application/octet-stream",
                                                                     "Content-Length": "0"}, b"")
                    rbody = await resp.read()
                    if resp.status in (201, 204):
                        await progress.update(0, force=True)
                        return
                if resp.status < 500 and resp.status != 416:
                    raise self._error(ref, resp.status, rbody)
                why = f"status {resp.status}"
            except (RegistryError, ConnectionError, IncompleteMessage, asyncio.IncompleteReadError,
                    asyncio.TimeoutError) as exc:
                if isinstance(exc, RegistryError) and exc.status != 500:
                    raise
                why = str(exc)
            failures += 1
            if failures > _RESUME_ATTEMPTS:
                raise registry_error(500, f"upload of {digest} failed: {why}")
            await asyncio.sleep(0.1 * failures)
            resumed = await self._upload_status(location, scopes)
            if resumed is None:   # the session is gone: a new one, from the first byte
                log.info("upload of %s at %d bytes failed (%s): starting over", digest, offset, why)
                location, offset = await self._start_upload(ref), 0
            else:
                location, offset = resumed
                log.info("upload of %s failed (%s): resuming at %d bytes", digest, why, offset)
            progress.current = offset
            await self.emit({"status": f"Retrying in {failures} second{'s' if failures > 1 else ''}",
                             "progressDetail": {}, "id": lid})

    async def _upload_status(self, location: str, scopes: list[str]) -> tuple[str, int] | None:
        """(location, next offset) of an upload session from the registry's Range; None when it is gone."""
        try:
            resp = await self.s.request("GET", location, scopes)
            await resp.read()
        except (RegistryError, ConnectionError, IncompleteMessage, asyncio.TimeoutError):
            return None
        if resp.status != 204 or not resp.headers.get("range"):
            return None
        return self._abs(resp.headers.get("location") or location), _range_end(resp.headers["range"], 0)

    async def _ensure_blob(self, ref: Reference, digest: str, data: bytes) -> None:
        if await self._head(ref, digest) is not None:
            return
        location = await self._start_upload(ref)
        url = location + ("&" if "?" in location else "?") + "digest=" + digest
        resp = await self.s.request("PUT", url, self._scopes(ref), {"Content-Type": "application/octet-stream"}, data)
        body = await resp.read()
        if resp.status not in (201, 204):
            raise self._error(ref, resp.status, body)
