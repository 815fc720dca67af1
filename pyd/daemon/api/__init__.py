"""The API routes: one module per resource; each handler parses and validates, calls a service, and shapes
the response. engine.py registers every module with the services its routes call."""
