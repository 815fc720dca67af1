"""The image graph's face at the package top: the store itself lives in pyd.daemon.storage.graph."""
from pyd.daemon.storage.graph import Graph, GraphDriverError, chain_id, short_id

__all__ = ["Graph", "GraphDriverError", "chain_id", "short_id"]
