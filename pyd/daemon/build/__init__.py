"""The classic Dockerfile builder and its cache."""
