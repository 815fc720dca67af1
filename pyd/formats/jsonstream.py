"""A stream of JSON documents, as Docker sends progress and events (/events, pull, push, load, build): one
per line, or simply concatenated. Sans-IO decoder, and the loops over a body's chunks for both kinds of client."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, AsyncIterable, AsyncIterator, Iterable, Iterator


class JSONStreamDecoder:
    """Sans-IO decoder of JSON documents separated by whitespace/newlines or simply concatenated. feed()
    returns the documents completed so far."""

    def __init__(self) -> None:
        import codecs
        import json
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._decoder = json.JSONDecoder()
        self._text = ""

    def feed(self, data: bytes) -> list[Any]:
        self._text += self._utf8.decode(data)
        return self._drain(final=False)

    def close(self) -> list[Any]:
        """End of stream: the rest must be complete documents (else ValueError)."""
        self._text += self._utf8.decode(b"", final=True)
        docs = self._drain(final=True)
        if self._text.strip():
            raise ValueError(f"truncated JSON document in stream: {self._text[:80]!r}")
        return docs

    def _drain(self, final: bool) -> list[Any]:
        text, docs, pos, n = self._text, [], 0, len(self._text)
        while True:
            while pos < n and text[pos] in " \t\r\n":
                pos += 1
            if pos == n:
                break
            try:
                doc, end = self._decoder.raw_decode(text, pos)
            except ValueError:
                if final:
                    raise
                break  # incomplete: wait for more bytes
            if end == n and not final and not isinstance(doc, (dict, list, str)):
                break  # a number or literal at the very end may still be growing
            docs.append(doc)
            pos = end
        self._text = text[pos:]
        return docs


def iter_json(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The documents of a body read in pieces; a truncated last document raises ValueError."""
    decoder = JSONStreamDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.close()


async def aiter_json(chunks: AsyncIterable[bytes]) -> AsyncIterator[Any]:
    """iter_json() for an async body."""
    decoder = JSONStreamDecoder()
    async for chunk in chunks:
        for doc in decoder.feed(chunk):
            yield doc
    for doc in decoder.close():
        yield doc
