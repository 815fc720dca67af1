"""Dockerfile parsing: parser directives, line continuations, comments, instructions with their flags and
arguments, and Docker's variable substitution (the shell-like lexer that expands ${VAR:-x} and removes
quotes).

Pure (no daemon imports): `parse(text)` gives a `Dockerfile` of `Instruction`s; `split_stages` groups them
into global ARGs and stages; `Lexer(escape).word(text, env)` expands one word. Errors are
`DockerfileError`, whose text is Docker's: "dockerfile parse error on line 3: unknown instruction: FOO".
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

INSTRUCTIONS = ("add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck", "label",
                "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir")
# flags each instruction accepts (anything else: "Unknown flag: x")
FLAGS: dict[str, tuple[str, ...]] = {
    "from": ("platform",), "copy": ("from", "chown", "chmod", "link", "parents", "exclude"),
    "add": ("chown", "chmod", "link", "keep-git-dir", "checksum", "exclude"),
    "run": ("mount", "network", "security"),
    "healthcheck": ("interval", "timeout", "start-period", "start-interval", "retries"),
}
_DIRECTIVE = re.compile(r"^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$")
_DIRECTIVES = ("escape", "syntax", "check")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")
_HEREDOC_INSTRUCTIONS = ("run", "copy", "add")
# the frontend images whose Dockerfile syntax is the one built in: docker/dockerfile:1, :1.7, :1.7.1, -labs
_BUILTIN_FRONTEND = re.compile(r"^(?:docker\.io/)?(?:docker/dockerfile)(?::1(?:\.\d+){0,2}(?:-labs)?|:latest|:labs)?"
                               r"(?:@sha256:[0-9a-f]{64})?$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")


class DockerfileError(ValueError):
    """A Dockerfile that cannot be parsed; str() is Docker's message with the line number."""

    def __init__(self, message: str, line: int | None = None):
        self.message, self.line = message, line
        super().__init__(f"dockerfile parse error on line {line}: {message}" if line else message)


@dataclass
class Heredoc:
    """An inline document (`<<EOF` ... `EOF`) of a RUN, COPY or ADD."""
    name: str                     # the delimiter word, quotes removed
    content: str                  # the lines as written (leading tabs kept), each ending in a newline
    expand: bool = True           # an unquoted delimiter: COPY expands ${VAR} in the content
    chomp: bool = False           # `<<-`: leading tabs are stripped

    def text(self) -> str:
        """The content with `<<-`'s tab stripping applied."""
        return re.sub(r"(?m)^\t+", "", self.content) if self.chomp else self.content


def parse_heredoc(word: str, escape: str = "\\") -> Heredoc | None:
    """A `<<NAME`, `<<-NAME`, `<<"NAME"` word (BuildKit's rule: one word after the <<), else None."""
    m = _HEREDOC.match(word)
    if not m or not m.group(3):
        return None
    rest = m.group(3)
    raw = split_words(rest, escape)
    if len(raw) != 1:
        return None
    try:
        name = Lexer(escape).word(raw[0], {})
    except DockerfileError:
        return None
    quoted = any(q in raw[0] for q in "'\"")
    return Heredoc(name, "", expand=not quoted, chomp=m.group(2) == "-")


def builtin_frontend(syntax: str) -> bool:
    """A `# syntax=` image that names the Dockerfile frontend built into this builder."""
    return bool(_BUILTIN_FRONTEND.match(syntax.strip()))


@dataclass
class Instruction:
    cmd: str                      # lower-case name: "run", "copy", ...
    original: str                 # the logical line as written (continuations joined), for "Step N/M : ..."
    line: int                     # first physical line
    flags: dict[str, str] = field(default_factory=dict)   # --from=x -> {"from": "x"}
    rest: str = ""                # the text after the name and the flags
    args: list[str] = field(default_factory=list)         # words (whitespace or JSON form)
    json: bool = False            # exec (JSON) form
    heredocs: list[Heredoc] = field(default_factory=list)
    lists: dict[str, list[str]] = field(default_factory=dict)   # repeatable flags: --mount, --exclude

    def __str__(self) -> str:
        return self.original


@dataclass
class Dockerfile:
    escape: str
    instructions: list[Instruction]
    warnings: list[str] = field(default_factory=list)
    syntax: str = ""              # the `# syntax=` directive, "" when absent


@dataclass
class Stage:
    base: str                     # image reference, "scratch" or an earlier stage's name (unexpanded)
    name: str                     # "" when unnamed
    platform: str
    from_: Instruction
    commands: list[Instruction] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# physical lines -> instructions

def parse(text: str) -> Dockerfile:
    """Parse a whole Dockerfile (directives, comments, continuations); unknown instructions are errors."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    escape, syntax = "\\", ""
    seen: set[str] = set()
    i = 0
    while i < len(lines):   # parser directives: only at the very top, before any other line
        m = _DIRECTIVE.match(lines[i].strip())
        if not m:
            break
        name, value = m.group(1).lower(), m.group(2)
        if name not in _DIRECTIVES:
            break                 # an unknown directive is a comment, and ends the directives
        if name in seen:
            raise DockerfileError(f"only one {name} parser directive can be used", i + 1)
        seen.add(name)
        if name == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(f"invalid ESCAPE '{value}'. Must be ` or \\", i + 1)
            escape = value
        elif name == "syntax":
            syntax = value
        i += 1
    df = Dockerfile(escape, [], syntax=syntax)
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    n = len(lines)
    while i < n:
        raw = lines[i]
        i += 1
        start = i
        stripped = raw.lstrip(" \t")
        if not stripped.strip() or stripped.startswith("#"):
            continue
        line, more = _trim_continuation(stripped, continuation)
        empty_continuation = False
        while more and i < n:
            nxt = lines[i]
            i += 1
            if nxt.lstrip(" \t").startswith("#"):
                continue
            if not nxt.strip():
                empty_continuation = True
                continue
            part, more = _trim_continuation(nxt, continuation)
            line += part
        if empty_continuation:
            df.warnings.append(f"[WARNING]: Empty continuation line found in:\n    {line}")
        if not line.strip():
            continue
        ins = parse_line(line, start, escape)
        if ins.cmd in _HEREDOC_INSTRUCTIONS and "<<" in line and not ins.json:
            for doc in _heredocs_of(line, escape):
                i = _read_heredoc(doc, lines, i, start)
                ins.heredocs.append(doc)
        df.instructions.append(ins)
    if any(w.startswith("[WARNING]: Empty continuation") for w in df.warnings):
        df.warnings.append("[WARNING]: Empty continuation lines will become errors in a future release.")
    return df


def _heredocs_of(line: str, escape: str) -> list[Heredoc]:
    return [d for d in (parse_heredoc(w, escape) for w in split_words(line, escape)) if d is not None]


def _read_heredoc(doc: Heredoc, lines: list[str], i: int, start: int) -> int:
    """Take the lines up to the delimiter into doc.content; the index after the delimiter line."""
    body: list[str] = []
    while i < len(lines):
        line = lines[i]
        i += 1
        if (line.lstrip("\t") if doc.chomp else line).rstrip("\r") == doc.name:
            doc.content = "".join(body)
            return i
        body.append(line + "\n")
    raise DockerfileError("unterminated heredoc", start)


def _trim_continuation(line: str, continuation: re.Pattern) -> tuple[str, bool]:
    if continuation.search(line):
        return continuation.sub("", line), True
    return line, False


def parse_line(line: str, lineno: int, escape: str = "\\") -> Instruction:
    """One logical line: the instruction name, its --flags and arguments."""
    original = line.strip()
    name, _, rest = original.partition(" ") if " " in original else (original, "", "")
    if "\t" in name:
        name, _, tail = name.partition("\t")
        rest = tail + " " + rest
    cmd = name.lower()
    rest = rest.strip()
    ins = Instruction(cmd, original, lineno)
    if cmd not in INSTRUCTIONS:
        raise DockerfileError(f"unknown instruction: {name.upper()}", lineno)
    if cmd in FLAGS:
        ins.flags, ins.lists, rest = _extract_flags(rest, cmd, lineno)
    ins.rest = rest
    try:
        _parse_args(ins, escape)
    except DockerfileError as exc:
        if exc.line is None:
            raise DockerfileError(exc.message, lineno) from None
        raise
    return ins


_REPEATABLE = ("mount", "exclude")


def _extract_flags(rest: str, cmd: str, lineno: int) -> tuple[dict[str, str], dict[str, list[str]], str]:
    flags: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    while rest.startswith("--"):
        word, _, tail = rest.partition(" ")
        if word == "--":
            rest = tail.lstrip()
            break
        key, eq, value = word[2:].partition("=")
        if key not in FLAGS[cmd]:
            raise DockerfileError(f"unknown flag: {key}", lineno)
        if not eq and key not in ("link", "parents", "keep-git-dir"):
            raise DockerfileError(f"missing a value on flag: {key}", lineno)
        if key in _REPEATABLE:
            lists.setdefault(key, []).append(value)
        elif key in flags:
            raise DockerfileError(f"duplicate flag specified: {key}", lineno)
        else:
            flags[key] = value if eq else "true"
        rest = tail.lstrip()
    return flags, lists, rest


def _maybe_json(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _parse_args(ins: Instruction, escape: str) -> None:
    cmd, rest = ins.cmd, ins.rest
    if cmd in ("run", "cmd", "entrypoint", "shell"):
        value = _maybe_json(rest)
        if value is not None:
            ins.args, ins.json = value, True
        elif cmd == "shell":
            raise DockerfileError("SHELL requires the arguments to be in JSON form")
        else:
            ins.args = [rest] if rest else []
        if cmd == "run" and not ins.args:
            raise DockerfileError("RUN requires at least one argument")
    elif cmd in ("copy", "add", "volume"):
        value = _maybe_json(rest)
        ins.json = value is not None
        ins.args = value if value is not None else rest.split()
        if cmd != "volume" and len(ins.args) < 2:
            raise DockerfileError(f"{cmd.upper()} requires at least two arguments, but only one was provided. "
                                  "Destination could not be determined.")
        if cmd == "volume" and not ins.args:
            raise DockerfileError("VOLUME requires at least one argument")
    elif cmd in ("env", "label"):
        pairs = name_values(rest, cmd.upper(), escape)
        ins.args = [x for kv in pairs for x in kv]
    elif cmd == "arg":
        words = split_words(rest, escape)
        if len(words) != 1 and not all("=" in w for w in words):
            raise DockerfileError("ARG requires exactly one argument")
        if not words:
            raise DockerfileError("ARG requires exactly one argument")
        ins.args = words
    elif cmd in ("from", "expose"):
        ins.args = rest.split()
        if cmd == "from" and len(ins.args) not in (1, 3):
            raise DockerfileError("FROM requires either one or three arguments")
        if cmd == "from" and len(ins.args) == 3 and ins.args[1].lower() != "as":
            raise DockerfileError("FROM requires either one or three arguments")
        if cmd == "expose" and not ins.args:
            raise DockerfileError("EXPOSE requires at least one argument")
    elif cmd in ("workdir", "user", "stopsignal", "maintainer"):
        if not rest:
            raise DockerfileError(f"{cmd.upper()} requires exactly one argument")
        ins.args = [rest]
    elif cmd == "healthcheck":
        kind, _, tail = rest.partition(" ")
        if not kind:
            raise DockerfileError("HEALTHCHECK requires at least one argument")
        tail = tail.strip()
        value = _maybe_json(tail)
        ins.json = value is not None
        ins.args = [kind.upper()] + (value if value is not None else ([tail] if tail else []))
    elif cmd == "onbuild":
        if not rest:
            raise DockerfileError("ONBUILD requires at least one argument")
        trigger = rest.split(None, 1)[0].upper()
        if trigger == "ONBUILD":
            raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise DockerfileError(f"{trigger} isn't allowed as an ONBUILD trigger")
        parse_line(rest, ins.line, escape)   # the trigger must itself be valid
        ins.args = [rest]


def split_words(rest: str, escape: str = "\\") -> list[str]:
    """Whitespace-separated words; quotes and escapes stay in the words (the lexer removes them later)."""
    words: list[str] = []
    word, quote, in_word, i = "", "", False, 0
    while i < len(rest):
        ch = rest[i]
        if not quote and ch in " \t":
            if in_word:
                words.append(word)
                word, in_word = "", False
            i += 1
            continue
        in_word = True
        if ch == escape and i + 1 < len(rest):
            word += ch + rest[i + 1]
            i += 2
            continue
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote = ch
        word += ch
        i += 1
    if in_word:
        words.append(word)
    return words


def name_values(rest: str, what: str, escape: str = "\\") -> list[tuple[str, str]]:
    """ENV/LABEL arguments: `k=v k2="v 2"` or the legacy `k value with spaces`."""
    words = split_words(rest, escape)
    if not words:
        raise DockerfileError(f"{what} requires at least one argument")
    if "=" not in words[0]:
        parts = re.split(r"[ \t]+", rest.strip(), maxsplit=1)
        if len(parts) < 2:
            raise DockerfileError(f"{what} must have two arguments")
        return [(parts[0], parts[1])]
    out = []
    for w in words:
        if "=" not in w:
            raise DockerfileError(f"Syntax error - can't find = in {w!r}. Must be of the form: name=value"
                                  .replace("'", '"'))
        key, _, value = w.partition("=")
        if not key:
            raise DockerfileError(f"{what} names can not be blank")
        out.append((key, value))
    return out


def split_stages(df: Dockerfile) -> tuple[list[Instruction], list[Stage]]:
    """(global ARGs before the first FROM, stages)."""
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for ins in df.instructions:
        if ins.cmd == "from":
            name = ins.args[2].lower() if len(ins.args) == 3 else ""
            if name and not _STAGE_NAME.match(name):
                raise DockerfileError(f"invalid name for build stage: {name!r}, name can't start with a number "
                                      "or contain symbols".replace("'", '"'), ins.line)
            if name and any(s.name == name for s in stages):
                raise DockerfileError(f"duplicate stage name {name!r}".replace("'", '"'), ins.line)
            stages.append(Stage(ins.args[0], name, ins.flags.get("platform", ""), ins))
        elif not stages:
            if ins.cmd != "arg":
                raise DockerfileError("no build stage in current context", ins.line)
            meta.append(ins)
        else:
            stages[-1].commands.append(ins)
    return meta, stages


# ---------------------------------------------------------------------------------------------------
# variable substitution (Docker's shell-like lexer)

class Lexer:
    """Expands $VAR, ${VAR}, ${VAR:-x}, ${VAR-x}, ${VAR:+x}, ${VAR+x}, ${VAR:?msg}; removes quotes and
    escapes as Docker's builder does for ENV, LABEL, COPY, WORKDIR, USER, ..."""

    def __init__(self, escape: str = "\\"):
        self.escape = escape

    def word(self, text: str, env: dict[str, str]) -> str:
        return "".join(_Scan(text, env, self.escape).run(split=False))

    def words(self, text: str, env: dict[str, str]) -> list[str]:
        return _Scan(text, env, self.escape).run(split=True)

    @staticmethod
    def expand_only(text: str, env: dict[str, str]) -> str:
        """BuildKit's expansion of a COPY heredoc: $VAR and backslash escapes; quotes are plain text."""
        return "".join(_Scan(text, env, "\\", quotes=False).run(split=False))


class _Scan:
    def __init__(self, text: str, env: dict[str, str], escape: str, quotes: bool = True):
        self.s, self.i, self.env, self.esc, self.quotes = text, 0, env, escape, quotes

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def run(self, split: bool) -> list[str]:
        words: list[str] = []
        word, in_word = "", False
        while self.i < len(self.s):
            ch = self.peek()
            if split and ch in " \t\n":
                self.i += 1
                if in_word:
                    words.append(word)
                    word, in_word = "", False
                continue
            in_word = True
            word += self.token(stop="")
        if in_word or not split:
            words.append(word)
        return words

    def token(self, stop: str) -> str:
        """One piece: an escaped char, a quoted string, a $expansion or a literal char."""
        ch = self.next()
        if ch == self.esc:
            nxt = self.next()
            return nxt
        if ch == "'" and self.quotes:
            return self.single_quoted()
        if ch == '"' and self.quotes:
            return self.double_quoted()
        if ch == "$":
            return self.dollar()
        return ch

    def single_quoted(self) -> str:
        end = self.s.find("'", self.i)
        if end < 0:
            raise DockerfileError("unexpected end of statement while looking for matching single-quote")
        out, self.i = self.s[self.i:end], end + 1
        return out

    def double_quoted(self) -> str:
        out = ""
        while True:
            if self.i >= len(self.s):
                raise DockerfileError("unexpected end of statement while looking for matching double-quote")
            ch = self.next()
            if ch == '"':
                return out
            if ch == "$":
                out += self.dollar()
            elif ch == self.esc and self.peek() in ('"', "$", self.esc) and self.peek():
                out += self.next()
            else:
                out += ch

    def name(self) -> str:
        start = self.i
        if self.peek().isdigit():
            self.i += 1
            return self.s[start:self.i]
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.i += 1
        return self.s[start:self.i]

    def until_brace(self) -> str:
        out = ""
        while True:
            if self.i >= len(self.s):
                raise DockerfileError("syntax error: missing '}'")
            if self.peek() == "}":
                self.i += 1
                return out
            ch = self.peek()
            if ch == "'" or ch == '"':
                self.i += 1
                out += self.single_quoted() if ch == "'" else self.double_quoted()
            else:
                out += self.token(stop="}")

    def dollar(self) -> str:
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.i += 1
        name = self.name()
        if not name:
            raise DockerfileError("bad substitution")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = self.next()
        if ch not in ("-", "+", "?"):
            if not ch:
                raise DockerfileError("syntax error: missing '}'")
            raise DockerfileError(f"unsupported modifier ({ch}) in substitution")
        word = self.until_brace()
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if ch == "-":
            return value if is_set else word
        if ch == "+":
            return word if is_set else ""
        if not is_set:   # "?"
            raise DockerfileError(f"{name}: {word or 'is not allowed to be unset'}")
        return value or ""
