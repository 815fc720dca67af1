"""Build secrets from the client's session: /moby.buildkit.secrets.v1.Secrets/GetSecret, asked for each id a
RUN --mount=type=secret names, when that step runs (the content never reaches the image or the cache key)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from pyd.daemon.buildkit import messages as m
from pyd.daemon.buildkit.grpc import NOT_FOUND, GrpcError

if TYPE_CHECKING:
    from pyd.daemon.buildkit.session import Session

GET_SECRET = "/moby.buildkit.secrets.v1.Secrets/GetSecret"


async def get_secret(session: Session, secret_id: str) -> bytes | None:
    """The secret's content; None if the client has no such secret (the mount decides whether that fails)."""
    if not session.supports(GET_SECRET):
        return None
    try:
        reply = await session.client.unary(GET_SECRET, m.GET_SECRET_REQUEST.encode({"ID": secret_id}))
    except GrpcError as exc:
        if exc.code == NOT_FOUND:
            return None
        raise
    return m.GET_SECRET_RESPONSE.decode(reply)["data"]
