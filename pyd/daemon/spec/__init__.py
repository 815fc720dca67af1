"""From a container's Docker config to the spec execd runs."""
