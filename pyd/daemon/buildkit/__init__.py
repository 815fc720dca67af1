"""BuildKit's daemon side for buildx's `docker` driver: Control on POST /grpc, client sessions on
POST /session, both gRPC over HTTP/2 on the hijacked connection. Imported on the first such request."""
from __future__ import annotations
