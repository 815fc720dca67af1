"""TLS settings for both ends: a client's context (CA, client certificate, verification) and a server's."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl


class TLSConfig:
    """ca: the CA bundle to trust (None: the system's); cert/key: our certificate; verify: check the peer."""

    def __init__(self, ca: str | None = None, cert: str | None = None, key: str | None = None,
                 verify: bool = True) -> None:
        self.ca, self.cert, self.key, self.verify = ca, cert, key, verify

    def __repr__(self) -> str:
        return f"TLSConfig(ca={self.ca!r}, cert={self.cert!r}, key={self.key!r}, verify={self.verify!r})"

    def client_context(self) -> ssl.SSLContext:
        import ssl
        ctx = ssl.create_default_context(cafile=self.ca)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def server_context(self) -> ssl.SSLContext:
        """Serve self.cert/self.key; with verify, require client certificates signed by self.ca."""
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        if self.verify and self.ca:
            ctx.load_verify_locations(cafile=self.ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx
