"""Distribution metadata: which registry blob holds which layer, so a layer is never pushed twice and a
blob that another repository of the same registry has can be mounted instead of uploaded.

    <root>/image/<driver>/distribution/diffid-by-digest/sha256/<blob hex>     -> diff ID
    <root>/image/<driver>/distribution/v2metadata-by-diffid/sha256/<diff hex> -> [{"Digest", "SourceRepository", "HMAC"}]

The layout is dockerd's; every write is atomic.
"""
from __future__ import annotations

import json
import os
import threading

from pyd.daemon.fsutil import atomic_write, atomic_write_json, read_text


def _hex(digest: str) -> str:
    return digest.split(":", 1)[-1]


class DistributionMetadata:
    def __init__(self, meta_root: str) -> None:
        self.root = os.path.join(meta_root, "distribution")
        self._by_digest = os.path.join(self.root, "diffid-by-digest", "sha256")
        self._by_diffid = os.path.join(self.root, "v2metadata-by-diffid", "sha256")
        os.makedirs(self._by_digest, 0o700, exist_ok=True)
        os.makedirs(self._by_diffid, 0o700, exist_ok=True)
        self._lock = threading.Lock()

    def diff_id(self, blob_digest: str) -> str | None:
        return read_text(os.path.join(self._by_digest, _hex(blob_digest))) or None

    def sources(self, diff_id: str) -> list[dict]:
        """[{"Digest": blob digest, "SourceRepository": "host:port/repo"}] known for a layer."""
        try:
            with open(os.path.join(self._by_diffid, _hex(diff_id))) as f:
                entries = json.load(f)
            return [e for e in entries if isinstance(e, dict) and e.get("Digest")]
        except (OSError, ValueError):
            return []

    def add(self, diff_id: str, blob_digest: str, repository: str) -> None:
        """Remember that `repository` ("127.0.0.1:5000/bb") has the layer as blob `blob_digest`."""
        with self._lock:
            atomic_write(os.path.join(self._by_digest, _hex(blob_digest)), diff_id.encode())
            entries = [e for e in self.sources(diff_id)
                       if not (e["Digest"] == blob_digest and e.get("SourceRepository") == repository)]
            entries.insert(0, {"Digest": blob_digest, "SourceRepository": repository, "HMAC": ""})
            atomic_write_json(os.path.join(self._by_diffid, _hex(diff_id)), entries[:50])

    def remove(self, diff_id: str, blob_digest: str, repository: str) -> None:
        """Forget a stale entry (the registry no longer has the blob)."""
        with self._lock:
            entries = [e for e in self.sources(diff_id)
                       if not (e["Digest"] == blob_digest and e.get("SourceRepository") == repository)]
            atomic_write_json(os.path.join(self._by_diffid, _hex(diff_id)), entries)
