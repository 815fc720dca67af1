"""Layers, images and references on disk, the graph drivers and layer archives."""
