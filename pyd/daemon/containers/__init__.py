"""Containers: the model, the service verbs and what runs beside a container (logs, health, restarts, execs)."""
