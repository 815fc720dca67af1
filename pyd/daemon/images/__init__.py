"""Image services: pull, push and commit, and the registry client."""
