"""A subset of Go's text/template, enough for docker's --format and inspect -f.

Supported: text, {{.A.B}}, {{.}}, {{$}}, variables ({{$x := .A}}, {{range $k, $v := .M}}), pipelines with |,
parenthesized pipelines, string/raw-string/number/bool/nil literals, {{if}}/{{else if}}/{{else}}/{{end}},
{{range}} (lists, maps by sorted key) with {{else}}, {{with}}, {{- trim markers -}}, {{/* comments */}},
and docker's functions (json, join, split, lower, upper, title, pad, truncate, println, index, len, printf,
print, eq, ne, lt, le, gt, ge, and, or, not).

Values are Python data decoded from the API's JSON, or "format contexts": objects exposing a `template_field`
method (the ps/images rows), which play the role of docker's Go structs with methods.
Errors follow Go's wording: "template: :1: unclosed action", "template: :1:2: executing \"\" at <.Foo>: ...".
"""
from __future__ import annotations

TYPE_CHECKING = False     # typing and dataclasses cost milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Callable

_MISSING = object()          # Go's "invalid value": a missing map key, printed as "<no value>"
_NO_PIPE = object()


class TemplateError(Exception):
    """Base of parse and execution errors; str() is Go's message."""


class TemplateParseError(TemplateError):
    pass


class TemplateExecError(TemplateError):
    pass


class FormatContext:
    """Base for objects whose fields are methods (docker's formatter contexts)."""

    go_type = "*formatter.Context"

    def template_field(self, name: str, args: list[Any]) -> Any:
        method = getattr(self, "field_" + name, None)
        if method is None:
            raise LookupError(f"can't evaluate field {name} in type {self.go_type}")
        return method(*args)

    def to_json_dict(self) -> dict[str, Any]:
        """The object as docker's `{{json .}}` shows it: every field, keys sorted."""
        out = {}
        for attr in sorted(dir(self)):
            if attr.startswith("field_") and attr not in self.json_skip:
                try:
                    out[attr[6:]] = getattr(self, attr)()
                except TypeError:           # fields that need arguments (Label) are not part of it
                    continue
        return out

    json_skip: tuple[str, ...] = ()


# ---------------------------------------------------------------- lexer

class Tok:
    """kind: text, lbrace (begin action), rbrace, field, dot, var, ident, string, number, lparen, rparen,
    pipe, comma, declare, assign, space, eof."""
    __slots__ = ("kind", "val", "pos")

    def __init__(self, kind: str, val: str, pos: int) -> None:
        self.kind, self.val, self.pos = kind, val, pos


_KEYWORDS = {"if", "else", "end", "range", "with", "nil", "true", "false", "break", "continue",
             "define", "template", "block"}


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _lex(text: str) -> list[Tok]:
    toks: list[Tok] = []
    i, n = 0, len(text)
    trim_next = False
    while i < n:
        start = text.find("{{", i)
        if start < 0:
            chunk = text[i:]
            toks.append(Tok("text", chunk.lstrip(" \t\r\n") if trim_next else chunk, i))
            break
        chunk = text[i:start]
        if trim_next:
            chunk = chunk.lstrip(" \t\r\n")
        j = start + 2
        if text.startswith("-", j) and j + 1 < n and text[j + 1] in " \t\r\n":
            chunk = chunk.rstrip(" \t\r\n")
            j += 2
        if chunk:
            toks.append(Tok("text", chunk, i))
        i, trim_next = _lex_action(text, j, start, toks)
    toks.append(Tok("eof", "", n))
    return toks


def _lex_action(text: str, i: int, start: int, toks: list[Tok]) -> tuple[int, bool]:
    """Lex one action starting after '{{'; returns (index after '}}', trim-following-text flag)."""
    n = len(text)
    # comments
    k = i
    while k < n and text[k] in " \t\r\n":
        k += 1
    if text.startswith("/*", k):
        end = text.find("*/", k + 2)
        if end < 0:
            raise TemplateParseError(f"template: :{_line_of(text, start)}: unclosed comment")
        k = end + 2
        trim = False
        if text.startswith(" -}}", k):
            return k + 4, True
        if not text.startswith("}}", k):
            raise TemplateParseError(f"template: :{_line_of(text, start)}: comment ends before closing delimiter")
        return k + 2, trim
    toks.append(Tok("lbrace", "{{", start))
    while True:
        if i >= n:
            raise TemplateParseError(f"template: :{_line_of(text, start)}: unclosed action")
        c = text[i]
        if c in " \t\r\n":
            j = i
            while j < n and text[j] in " \t\r\n":
                j += 1
            if text.startswith("-}}", j) and j > i:
                toks.append(Tok("rbrace", "}}", j))
                return j + 3, True
            toks.append(Tok("space", " ", i))
            i = j
            continue
        if text.startswith("}}", i):
            toks.append(Tok("rbrace", "}}", i))
            return i + 2, False
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    j += 1
                if j < n and text[j] == "\n":
                    raise TemplateParseError(f"template: :{_line_of(text, start)}: unterminated quoted string")
                j += 1
            if j >= n:
                raise TemplateParseError(f"template: :{_line_of(text, start)}: unterminated quoted string")
            toks.append(Tok("string", _unquote(text[i:j + 1], text, start), i))
            i = j + 1
        elif c == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise TemplateParseError(f"template: :{_line_of(text, start)}: unterminated raw quoted string")
            toks.append(Tok("string", text[i + 1:j], i))
            i = j + 1
        elif c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise TemplateParseError(f"template: :{_line_of(text, start)}: unterminated character constant")
            toks.append(Tok("number", str(ord(_unquote('"' + text[i + 1:j] + '"', text, start))), i))
            i = j + 1
        elif c == ".":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            if j == i + 1:
                if i + 1 < n and text[i + 1].isdigit():
                    j = _scan_number(text, i)
                    toks.append(Tok("number", text[i:j], i))
                else:
                    toks.append(Tok("dot", ".", i))
            else:
                toks.append(Tok("field", text[i + 1:j], i))
            i = j
        elif c == "$":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            toks.append(Tok("var", text[i:j], i))
            i = j
        elif c.isdigit() or (c in "+-" and i + 1 < n and text[i + 1].isdigit()):
            j = _scan_number(text, i)
            toks.append(Tok("number", text[i:j], i))
            i = j
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            toks.append(Tok("ident", text[i:j], i))
            i = j
        elif c == "(":
            toks.append(Tok("lparen", c, i)); i += 1
        elif c == ")":
            toks.append(Tok("rparen", c, i)); i += 1
        elif c == "|":
            toks.append(Tok("pipe", c, i)); i += 1
        elif c == ",":
            toks.append(Tok("comma", c, i)); i += 1
        elif text.startswith(":=", i):
            toks.append(Tok("declare", ":=", i)); i += 2
        elif c == "=":
            toks.append(Tok("assign", "=", i)); i += 1
        else:
            raise TemplateParseError(f"template: :{_line_of(text, start)}: unexpected {_go_quote_rune(c)} in command")


def _scan_number(text: str, i: int) -> int:
    j = i + 1
    while j < len(text) and (text[j].isalnum() or text[j] in "._+-"):
        if text[j] in "+-" and text[j - 1] not in "eEpP":
            break
        j += 1
    return j


def _go_quote_rune(c: str) -> str:
    return "'" + c.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _unquote(lit: str, text: str, start: int) -> str:
    body, out, i = lit[1:-1], [], 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b",
              "f": "\f", "v": "\v"}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c); i += 1
            continue
        e = body[i + 1] if i + 1 < len(body) else ""
        if e in simple:
            out.append(simple[e]); i += 2
        elif e in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[e]
            try:
                out.append(chr(int(body[i + 2:i + 2 + size], 16)))
            except ValueError:
                raise TemplateParseError(f"template: :{_line_of(text, start)}: invalid syntax") from None
            i += 2 + size
        else:
            raise TemplateParseError(f"template: :{_line_of(text, start)}: invalid syntax")
    return "".join(out)


# ---------------------------------------------------------------- parse tree

class Node:
    """A parse-tree node: its offset in the template and its source text (for "executing ... at <...>")."""
    _defaults: dict[str, Any] = {}

    def __init__(self, pos: int, src: str = "", **fields: Any) -> None:
        self.pos, self.src = pos, src
        for name, default in self._defaults.items():
            value = fields.pop(name) if name in fields else default
            setattr(self, name, list(value) if isinstance(value, list) else value)
        if fields:
            raise TypeError(f"unknown fields {sorted(fields)}")


class TextNode(Node):
    _defaults = {"text": ""}


class FieldNode(Node):          # .A.B on dot, or on a term when receiver is set
    _defaults = {"names": [], "receiver": None}


class VarNode(Node):
    _defaults = {"name": "", "names": []}


class DotNode(Node):
    pass


class LiteralNode(Node):
    _defaults = {"value": None}


class IdentNode(Node):
    _defaults = {"name": ""}


class CommandNode(Node):
    _defaults = {"args": []}


class PipeNode(Node):
    _defaults = {"decl": [], "cmds": []}


class ActionNode(Node):
    _defaults = {"pipe": None}


class BranchNode(Node):       # if / range / with
    _defaults = {"kind": "", "pipe": None, "body": [], "else_body": None}


class _Parser:
    def __init__(self, text: str, funcs: dict[str, Callable]) -> None:
        self.text = text
        self.funcs = funcs
        self.toks = _lex(text)
        self.i = 0

    def error(self, msg: str, pos: int) -> TemplateParseError:
        return TemplateParseError(f"template: :{_line_of(self.text, pos)}: {msg}")

    def peek(self, skip_space: bool = True) -> Tok:
        j = self.i
        while skip_space and self.toks[j].kind == "space":
            j += 1
        return self.toks[j]

    def next(self, skip_space: bool = True) -> Tok:
        while skip_space and self.toks[self.i].kind == "space":
            self.i += 1
        tok = self.toks[self.i]
        self.i += 1
        return tok

    # list := (text | action)* ; stops at {{end}}/{{else}} and returns which one
    def parse_list(self, inside: str | None) -> tuple[list[Node], str]:
        nodes: list[Node] = []
        while True:
            tok = self.next(skip_space=False)
            if tok.kind == "eof":
                if inside:
                    raise self.error("unexpected EOF", tok.pos)
                return nodes, "eof"
            if tok.kind == "text":
                nodes.append(TextNode(tok.pos, text=tok.val))
                continue
            # lbrace
            kw = self.peek()
            if kw.kind == "ident" and kw.val in ("end", "else"):
                self.next()
                if not inside:
                    raise self.error(f"unexpected {{{{{kw.val}}}}}", kw.pos)
                if kw.val == "end":
                    self.expect_rbrace("end")
                return nodes, kw.val
            if kw.kind == "ident" and kw.val in ("if", "range", "with"):
                self.next()
                nodes.append(self.parse_branch(kw))
                continue
            if kw.kind == "ident" and kw.val in ("define", "template", "block", "break", "continue"):
                raise self.error(f"{{{{{kw.val}}}}} is not supported", kw.pos)
            pipe = self.parse_pipe(tok.pos, "command")
            nodes.append(ActionNode(tok.pos, src=pipe.src, pipe=pipe))

    def expect_rbrace(self, context: str) -> None:
        tok = self.next()
        if tok.kind != "rbrace":
            raise self.error(f"unexpected {self.describe(tok)} in {context}", tok.pos)

    def describe(self, tok: Tok) -> str:
        if tok.kind == "rbrace":
            return "\"}}\""
        if tok.kind == "eof":
            return "EOF"
        return f"<{tok.val}>" if tok.kind in ("field", "ident", "var") else f'"{tok.val}"'

    def parse_branch(self, kw: Tok) -> BranchNode:
        pipe = self.parse_pipe(kw.pos, kw.val)
        body, ended = self.parse_list(kw.val)
        node = BranchNode(kw.pos, src=pipe.src, kind=kw.val, pipe=pipe, body=body)
        if ended == "else":
            nxt = self.peek()
            if nxt.kind == "ident" and nxt.val == "if" and kw.val == "if":
                self.next()
                node.else_body = [self.parse_branch(nxt)]     # {{else if}} nests; shares the {{end}}
                return node
            self.expect_rbrace("else")
            node.else_body, ended = self.parse_list(kw.val)
            if ended != "end":
                raise self.error("expected end; found {{else}}", kw.pos)
        return node

    def parse_pipe(self, start: int, context: str) -> PipeNode:
        pipe = PipeNode(start)
        # declarations: $x := ... or $i, $e := ...
        save = self.i
        decl: list[str] = []
        while self.peek().kind == "var":
            decl.append(self.next().val)
            if self.peek().kind == "comma":
                self.next()
                continue
            break
        if decl and self.peek().kind in ("declare", "assign"):
            self.next()
            pipe.decl = decl
        else:
            self.i = save
        src_start = self.peek().pos
        while True:
            cmd = self.parse_command(context)
            pipe.cmds.append(cmd)
            tok = self.peek()
            if tok.kind == "pipe":
                self.next()
                continue
            if tok.kind in ("rbrace", "rparen"):
                if tok.kind == "rbrace" and context != "paren":
                    self.next()
                break
            raise self.error(f"unexpected {self.describe(tok)} in {context}", tok.pos)
        pipe.src = self.text[src_start:self.peek().pos if context == "paren" else self.toks[self.i - 1].pos].strip()
        if not pipe.cmds[0].args:
            raise self.error(f"missing value for {context}", start)
        return pipe

    def parse_command(self, context: str) -> CommandNode:
        cmd = CommandNode(self.peek().pos)
        while True:
            tok = self.peek(skip_space=False)
            if tok.kind == "space":
                self.next(skip_space=False)
                continue
            if tok.kind in ("rbrace", "rparen", "pipe", "eof"):
                if tok.kind == "eof":
                    raise self.error("unclosed action", cmd.pos)
                break
            cmd.args.append(self.parse_operand(context))
        if not cmd.args and self.peek().kind == "pipe":
            raise self.error("missing value for command", cmd.pos)
        cmd.src = self.text[cmd.pos:self.peek().pos].strip()
        return cmd

    def parse_operand(self, context: str) -> Node:
        tok = self.next(skip_space=False)
        node: Node
        if tok.kind == "field":
            names = [tok.val]
            names += self.chain()
            return FieldNode(tok.pos, src="." + ".".join(names), names=names)
        if tok.kind == "dot":
            node = DotNode(tok.pos, src=".")
        elif tok.kind == "var":
            node = VarNode(tok.pos, src=tok.val, name=tok.val)
            node.names = self.chain()
            node.src += "".join("." + n for n in node.names)
            return node
        elif tok.kind == "string":
            node = LiteralNode(tok.pos, src=self.text[tok.pos:self.peek(False).pos], value=tok.val)
        elif tok.kind == "number":
            node = LiteralNode(tok.pos, src=tok.val, value=self.number(tok))
        elif tok.kind == "ident":
            if tok.val in ("true", "false"):
                node = LiteralNode(tok.pos, src=tok.val, value=tok.val == "true")
            elif tok.val == "nil":
                node = LiteralNode(tok.pos, src="nil", value=None)
            elif tok.val in _KEYWORDS:
                raise self.error(f"unexpected <{tok.val}> in {context}", tok.pos)
            elif tok.val not in self.funcs:
                raise self.error(f'function "{tok.val}" not defined', tok.pos)
            else:
                node = IdentNode(tok.pos, src=tok.val, name=tok.val)
        elif tok.kind == "lparen":
            inner = self.parse_pipe(tok.pos, "paren")
            close = self.next()
            if close.kind != "rparen":
                raise self.error("unclosed left paren", tok.pos)
            node = inner
            node.src = "(" + inner.src + ")"
        else:
            raise self.error(f"unexpected {self.describe(tok)} in {context}", tok.pos)
        names = self.chain()
        if names:
            if isinstance(node, (LiteralNode, IdentNode)) and not isinstance(node, PipeNode):
                raise self.error(f"unexpected . after term {node.src!r}", tok.pos)
            return FieldNode(tok.pos, src=node.src + "".join("." + n for n in names), names=names, receiver=node)
        return node

    def chain(self) -> list[str]:
        names = []
        while self.peek(skip_space=False).kind == "field":
            names.append(self.next(skip_space=False).val)
        return names

    def number(self, tok: Tok) -> int | float:
        try:
            return int(tok.val, 0)
        except ValueError:
            try:
                return float(tok.val)
            except ValueError:
                raise self.error(f"bad number syntax: {tok.val!r}", tok.pos) from None


# ---------------------------------------------------------------- values

def _go_string(v: Any) -> str:
    """fmt's %v of a value decoded from JSON (or a template result)."""
    if v is _MISSING:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return repr(v) if not v.is_integer() or abs(v) >= 1e21 else str(int(v))
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_string(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_go_string(x) for x in v) + "]"
    return str(v)


def _truth(v: Any) -> bool:
    if v is _MISSING or v is None:
        return False
    if isinstance(v, FormatContext):
        return True
    return bool(v)


def _go_quote(s: str) -> str:
    """strconv.Quote: printable runes as-is, the rest escaped."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[ch])
        elif o < 0x20 or o == 0x7f:
            out.append(f"\\x{o:02x}")
        elif not ch.isprintable() and o > 0x7f:
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_quote(s: str) -> str:
    return _go_quote(s)


def json_marshal(v: Any, escape_html: bool = False) -> str:
    import json
    if isinstance(v, FormatContext):
        v, escape_html = v.to_json_dict(), True      # docker marshals contexts with json.Marshal
    if v is _MISSING:
        v = None
    text = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    if escape_html:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _fn_index(item: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(item, dict):
            if k in item:
                item = item[k]
            else:   # Go returns the element type's zero value
                item = "" if all(isinstance(x, str) for x in item.values()) else _MISSING
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(k, int) or isinstance(k, bool):
                raise ValueError(f"cannot index slice/array with type {type(k).__name__}")
            if not 0 <= k < len(item):
                raise ValueError(f"index out of range: {k}")
            item = item[k]
        elif item is None or item is _MISSING:
            raise ValueError("index of untyped nil")
        else:
            raise ValueError(f"can't index item of type {type(item).__name__}")
    return item


def _fn_len(item: Any) -> int:
    if isinstance(item, (str, list, tuple, dict)):
        return len(item)
    raise ValueError(f"len of type {type(item).__name__}")


def _fn_printf(fmt: str, *args: Any) -> str:
    import re
    it = iter(args)

    def repl(m: re.Match) -> str:
        flags, verb = m.group(1), m.group(2)
        if verb == "%":
            return "%"
        try:
            arg = next(it)
        except StopIteration:
            return f"%!{verb}(MISSING)"
        if verb == "q":
            return ("%" + flags + "s") % _go_quote(_go_string(arg))
        if verb in "dxXo" and isinstance(arg, (int, float)) and not isinstance(arg, bool):
            return ("%" + flags + verb) % int(arg)
        if verb in "feEgG" and isinstance(arg, (int, float)):
            return ("%" + flags + verb) % arg
        return ("%" + flags + "s") % _go_string(arg)
    return re.sub(r"%([-+ #0]*\d*(?:\.\d+)?)([a-zA-Z%])", repl, fmt)


def _fn_truncate(s: str, n: int) -> str:
    return s[:n] if len(s) > n else s


def _fn_compare(op: str) -> Callable[..., bool]:
    def cmp(a: Any, b: Any, *more: Any) -> bool:
        if op == "eq":
            return any(a == x for x in (b, *more))
        if op == "ne":
            return a != b
        try:
            return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
        except TypeError:
            raise ValueError("incompatible types for comparison") from None
    return cmp


def _fn_and(*args: Any) -> Any:
    for a in args:
        if not _truth(a):
            return a
    return args[-1]


def _fn_or(*args: Any) -> Any:
    for a in args:
        if _truth(a):
            return a
    return args[-1]


def _fn_print(*args: Any) -> str:
    # fmt.Sprint adds spaces between operands when neither side is a string
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += _go_string(a)
    return out


BASIC_FUNCS: dict[str, Callable] = {
    "json": json_marshal,
    "split": lambda s, sep: s.split(sep),
    "join": lambda items, sep: sep.join(_go_string(x) for x in (items or [])),
    "title": lambda s: s.title(),
    "lower": lambda s: _go_string(s).lower(),
    "upper": lambda s: _go_string(s).upper(),
    "pad": lambda s, before, after: " " * before + _go_string(s) + " " * after,
    "truncate": _fn_truncate,
    "println": lambda *a: " ".join(_go_string(x) for x in a) + "\n",
    "print": _fn_print,
    "printf": _fn_printf,
    "index": _fn_index,
    "len": _fn_len,
    "not": lambda a: not _truth(a),
    "and": _fn_and,
    "or": _fn_or,
    "eq": _fn_compare("eq"), "ne": _fn_compare("ne"), "lt": _fn_compare("lt"),
    "le": _fn_compare("le"), "gt": _fn_compare("gt"), "ge": _fn_compare("ge"),
}

# docker renders table headers by running the same template over a map of header names, with these
# functions reduced to the identity so that `{{upper .Names}}` still shows "NAMES".
HEADER_FUNCS: dict[str, Callable] = dict(BASIC_FUNCS)
HEADER_FUNCS.update({
    "json": lambda v: _go_string(v), "split": lambda v, _s: v, "join": lambda v, _s: _go_string(v),
    "title": lambda v: v, "lower": lambda v: v, "upper": lambda v: v,
    "truncate": lambda v, _n: v, "pad": lambda v, _a, _b: v,
})


# ---------------------------------------------------------------- execution

class _Exec:
    def __init__(self, tmpl: "Template", root: Any, funcs: dict[str, Callable]) -> None:
        self.tmpl = tmpl
        self.funcs = funcs
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.out: list[str] = []

    def error(self, node: Node, msg: str) -> TemplateExecError:
        text = self.tmpl.text
        line = _line_of(text, node.pos)
        col = node.pos - (text.rfind("\n", 0, node.pos) + 1)
        return TemplateExecError(f'template: :{line}:{col}: executing "" at <{node.src}>: {msg}')

    def run(self, nodes: list[Node], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, TextNode):
                self.out.append(node.text)
            elif isinstance(node, ActionNode):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(_go_string(value))
            else:
                self.branch(node, dot)

    def branch(self, node: BranchNode, dot: Any) -> None:
        mark = len(self.vars)
        if node.kind == "range":
            self.range(node, dot)
        else:
            value = self.pipe(node.pipe, dot)
            if _truth(value):
                self.run(node.body, value if node.kind == "with" else dot)
            elif node.else_body is not None:
                self.run(node.else_body, dot)
        del self.vars[mark:]

    def range(self, node: BranchNode, dot: Any) -> None:
        decl = node.pipe.decl
        node.pipe.decl = []
        try:
            value = self.pipe(node.pipe, dot)
        finally:
            node.pipe.decl = decl
        if value is None or value is _MISSING:
            items: list[tuple[Any, Any]] = []
        elif isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        else:
            raise self.error(node, f"range can't iterate over {_go_string(value)}")
        if not items:
            if node.else_body is not None:
                self.run(node.else_body, dot)
            return
        mark = len(self.vars)
        for key, elem in items:
            del self.vars[mark:]
            if len(decl) == 1:
                self.vars.append((decl[0], elem))
            elif len(decl) == 2:
                self.vars += [(decl[0], key), (decl[1], elem)]
            self.run(node.body, elem)

    def pipe(self, pipe: PipeNode, dot: Any) -> Any:
        value: Any = _NO_PIPE
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        for name in pipe.decl:
            self.vars.append((name, value))
        return value

    def command(self, cmd: CommandNode, dot: Any, piped: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, IdentNode):
            args = [self.arg(a, dot) for a in cmd.args[1:]]
            if piped is not _NO_PIPE:
                args.append(piped)
            try:
                return self.funcs[first.name](*args)
            except TemplateError:
                raise
            except TypeError as exc:
                raise self.error(cmd, f"wrong number of args for {first.name}: {exc}") from None
            except (ValueError, AttributeError, KeyError) as exc:
                raise self.error(cmd, f"error calling {first.name}: {exc}") from None
        if isinstance(first, FieldNode) and (len(cmd.args) > 1 or piped is not _NO_PIPE):
            args = [self.arg(a, dot) for a in cmd.args[1:]]
            if piped is not _NO_PIPE:
                args.append(piped)
            return self.field(first, dot, args)
        if len(cmd.args) > 1 or piped is not _NO_PIPE:
            raise self.error(first, f"can't give argument to non-function {first.src}")
        return self.arg(first, dot)

    def arg(self, node: Node, dot: Any) -> Any:
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, LiteralNode):
            return node.value
        if isinstance(node, VarNode):
            value = self.lookup_var(node)
            return self.walk(node, value, node.names, []) if node.names else value
        if isinstance(node, FieldNode):
            return self.field(node, dot, [])
        if isinstance(node, PipeNode):
            return self.pipe(node, dot)
        if isinstance(node, IdentNode):
            return self.command(CommandNode(node.pos, src=node.src, args=[node]), dot, _NO_PIPE)
        raise self.error(node, "can't evaluate")

    def lookup_var(self, node: VarNode) -> Any:
        for name, value in reversed(self.vars):
            if name == node.name:
                return value
        raise self.error(node, f"undefined variable: {node.name}")

    def field(self, node: FieldNode, dot: Any, args: list[Any]) -> Any:
        receiver = dot if node.receiver is None else self.arg(node.receiver, dot)
        return self.walk(node, receiver, node.names, args)

    def walk(self, node: Node, value: Any, names: list[str], args: list[Any]) -> Any:
        for i, name in enumerate(names):
            last = i == len(names) - 1
            value = self.one_field(node, value, name, args if last else [], last)
        return value

    def one_field(self, node: Node, value: Any, name: str, args: list[Any], last: bool) -> Any:
        if isinstance(value, FormatContext):
            try:
                return value.template_field(name, args)
            except LookupError as exc:
                raise self.error(node, str(exc)) from None
            except TypeError:
                raise self.error(node, f"wrong number of args for {name}") from None
        if args:
            raise self.error(node, f"{name} is not a method but has arguments")
        if isinstance(value, dict):
            if name in value:
                return value[name]
            if _struct_like(value):
                raise self.error(node, f'map has no entry for key "{name}"')
            return _MISSING
        if value is None or value is _MISSING:
            raise self.error(node, f"nil pointer evaluating interface {{}}.{name}")
        raise self.error(node, f"can't evaluate field {name} in type {_go_type(value)}")


def _struct_like(d: dict) -> bool:
    """A JSON object that stands for a Go struct (all keys capitalized), as opposed to a user map
    like Labels: docker reports a missing key of the former as an error, of the latter as <no value>."""
    return bool(d) and all(k[:1].isupper() for k in d)


def _go_type(v: Any) -> str:
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "float64"
    if isinstance(v, list):
        return "[]interface {}"
    return "interface {}"


class Template:
    """A parsed template. Raises TemplateParseError at construction on bad syntax."""

    def __init__(self, text: str, funcs: dict[str, Callable] | None = None) -> None:
        self.text = text
        self.funcs = funcs if funcs is not None else BASIC_FUNCS
        self.nodes, _ = _Parser(text, self.funcs).parse_list(None)

    def execute(self, data: Any, funcs: dict[str, Callable] | None = None) -> str:
        """Run the template over data; raises TemplateExecError with Go's wording."""
        ex = _Exec(self, data, funcs or self.funcs)
        ex.run(self.nodes, data)
        return "".join(ex.out)
