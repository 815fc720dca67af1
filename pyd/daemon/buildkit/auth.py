"""Registry credentials from the client's session (/moby.filesync.v1.Auth/Credentials): what `docker login`
stored in the client's config, asked for each registry a build pulls from (FROM, COPY --from, a named
context's image), as BuildKit's authorizer asks. Token signing (GetTokenAuthority) is not used: pyd's
registry client does the token exchange itself with the credentials."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pyd.daemon.buildkit import messages as m
from pyd.daemon.buildkit.grpc import GrpcError

if TYPE_CHECKING:
    from pyd.daemon.buildkit.session import Session

log = logging.getLogger("pyd.buildkit")

CREDENTIALS = "/moby.filesync.v1.Auth/Credentials"
DOCKER_HUB_HOST = "registry-1.docker.io"     # the host BuildKit names Docker Hub by


async def credentials(session: Session, domain: str) -> dict[str, str] | None:
    """An auth config (X-Registry-Config style) for the registry `domain`; None when the client has none."""
    if not session.supports(CREDENTIALS):
        return None
    host = DOCKER_HUB_HOST if domain == "docker.io" else domain
    try:
        reply = m.CREDENTIALS_RESPONSE.decode(
            await session.client.unary(CREDENTIALS, m.CREDENTIALS_REQUEST.encode({"Host": host})))
    except GrpcError as exc:
        log.debug("credentials for %s: %s", host, exc.message)
        return None
    if not reply["Username"] and not reply["Secret"]:
        return None
    if not reply["Username"]:
        return {"identitytoken": reply["Secret"]}
    return {"username": reply["Username"], "password": reply["Secret"]}
