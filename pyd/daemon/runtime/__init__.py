"""The runtime: the execd driver and the native calls Python lacks."""
