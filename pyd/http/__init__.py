"""HTTP/1.1 on the standard library alone, with no knowledge of the API it carries.

  parser   sans-IO: events, the message parser, and the client's request/response cycle
  server   asyncio server: router, requests, streamed responses, hijack, middleware hooks
  client   blocking client (no asyncio: the CLI imports it on every command)
  aclient  asyncio client (pooled, redirects)
  headers, urls, errors, tls   what those share

Nothing here imports asyncio, ssl or json at module level, so the blocking client starts fast.
"""
