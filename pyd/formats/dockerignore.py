""".dockerignore rules (moby's patternmatcher) and Go's filepath.Match, shared by the client (which leaves
excluded files out of the context it sends) and the daemon (which drops the Dockerfile and .dockerignore
when they are excluded, and matches COPY globs). Pure stdlib: no daemon-side imports.

Rules: one pattern a line, `#` comments, blank lines skipped; a leading `!` makes an exception; patterns
are cleaned paths relative to the context root; `*` and `?` never cross `/`, `**` matches any number of
directories; a pattern that matches a parent directory excludes everything below it; the last matching
pattern wins.
"""
from __future__ import annotations

import os
import posixpath
import re
from typing import Iterator


def read_patterns(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        if neg:
            line = line[1:].strip()
        if not line:
            continue
        line = posixpath.normpath(line)
        line = line.lstrip("/") or "."
        out.append(("!" if neg else "") + line)
    return out


def _translate(pattern: str, double_star: bool) -> str:
    """A pattern as a regex body; `**` spans directories only when double_star."""
    out, i, n = "", 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if double_star and pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):   # "**/": zero or more directories
                    i += 1
                    out += "(?:.*/)?"
                else:
                    out += ".*"
                continue
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < n:
            i += 1
            out += re.escape(pattern[i])
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"syntax error in pattern {pattern!r}")
            body = pattern[i + 1:end]
            if body.startswith("^") or body.startswith("!"):
                body = "^" + body[1:]
            out += "[" + body.replace("\\", "\\\\") + "]"
            i = end
        else:
            out += re.escape(ch)
        i += 1
    return out


def go_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match: the whole name, `*` and `?` stay within one path component."""
    try:
        return re.fullmatch(_translate(pattern, False), name, re.S) is not None
    except (ValueError, re.error):
        return False


class _Pattern:
    def __init__(self, text: str):
        self.exception = text.startswith("!")
        self.text = text[1:] if self.exception else text
        self.dirs = self.text.split("/")
        self.regex = re.compile(_translate(self.text, True) + r"\Z", re.S)

    def match(self, path: str) -> bool:
        return self.regex.match(path) is not None


class Matcher:
    """Decides whether a context path (relative, '/'-separated) is excluded."""

    def __init__(self, patterns: list[str]):
        self.patterns = [_Pattern(p) for p in patterns if p not in (".", "!.")]
        self.has_exceptions = any(p.exception for p in self.patterns)

    def excluded(self, path: str) -> bool:
        path = posixpath.normpath(path)
        parents = posixpath.dirname(path).split("/") if "/" in path else []
        result = False
        for p in self.patterns:
            hit = p.match(path)
            if not hit and parents and len(p.dirs) <= len(parents):
                hit = p.match("/".join(parents[:len(p.dirs)]))
            if hit:
                result = not p.exception
        return result

    def may_reinclude_under(self, directory: str) -> bool:
        """Could an exception pattern bring back something below an excluded directory?"""
        prefix = directory.rstrip("/") + "/"
        for p in self.patterns:
            if not p.exception:
                continue
            if p.text.startswith(prefix) or "*" in p.text or "?" in p.text or "[" in p.text:
                return True
        return False


def load(context_dir: str) -> Matcher:
    try:
        with open(os.path.join(context_dir, ".dockerignore"), encoding="utf-8", errors="replace") as f:
            return Matcher(read_patterns(f.read()))
    except FileNotFoundError:
        return Matcher([])


def walk(root: str, matcher: Matcher, keep: tuple[str, ...] = ()) -> Iterator[str]:
    """Context paths under root that are not excluded, parents before children, sorted; `keep` paths
    (the Dockerfile, .dockerignore) are always included, as the docker CLI does."""
    def visit(rel: str) -> Iterator[str]:
        full = os.path.join(root, rel) if rel else root
        try:
            names = sorted(os.listdir(full))
        except NotADirectoryError:
            return
        for name in names:
            child = f"{rel}/{name}" if rel else name
            is_dir = os.path.isdir(os.path.join(root, child)) and not os.path.islink(os.path.join(root, child))
            if child in keep or not matcher.excluded(child):
                yield child
                if is_dir:
                    yield from visit(child)
            elif is_dir and matcher.may_reinclude_under(child):
                yield from visit(child)
    yield from visit("")
