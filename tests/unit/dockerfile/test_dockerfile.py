"""Unit tests of the Dockerfile parser, the variable lexer and the .dockerignore matcher (no daemon)."""
from __future__ import annotations

import pytest

from pyd.formats import dockerignore
from pyd.daemon.build.dockerfile import DockerfileError, Lexer, parse, split_stages


def test_directives_continuations_comments():
    df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM busybox\n# a comment\nRUN echo a `\n"
               "  # inside\n    b\n\nCMD [\"sh\"]\n")
    assert df.escape == "`"
    assert [i.cmd for i in df.instructions] == ["from", "run", "cmd"]
    run = df.instructions[1]
    assert run.original == "RUN echo a     b" and run.line == 5 and run.args == ["echo a     b"]
    assert df.instructions[2].json and df.instructions[2].args == ["sh"]


def test_directive_only_at_top_and_bad_escape():
    df = parse("FROM busybox\n# escape=`\nRUN echo \\\n x\n")
    assert df.escape == "\\" and df.instructions[1].args == ["echo  x"]
    with pytest.raises(DockerfileError, match=r"invalid ESCAPE 'x'. Must be ` or \\"):
        parse("# escape=x\nFROM busybox\n")


def test_unknown_instruction_and_arity_errors_carry_line():
    with pytest.raises(DockerfileError) as info:
        parse("FROM busybox\n\nfoo bar\n")
    assert str(info.value) == "dockerfile parse error on line 3: unknown instruction: FOO"
    with pytest.raises(DockerfileError, match="line 2: FROM requires either one or three arguments"):
        parse("FROM busybox\nFROM a b\n")
    with pytest.raises(DockerfileError, match="line 1: SHELL requires the arguments to be in JSON form"):
        parse("SHELL /bin/bash\n")
    with pytest.raises(DockerfileError, match="unknown flag: bogus"):
        parse("FROM busybox\nCOPY --bogus=1 a b\n")
    with pytest.raises(DockerfileError, match="no build stage in current context"):
        split_stages(parse("RUN true\n"))


def test_env_label_forms_and_stages():
    df = parse('ARG X=1\nFROM busybox AS Build\nENV A=1 B="two words" C=\'$lit\'\nENV LEGACY value with spaces\n'
               'LABEL "k"="v"\nFROM build\nCOPY --from=build --chown=1:2 a b /d/\n')
    meta, stages = split_stages(df)
    assert [m.original for m in meta] == ["ARG X=1"]
    assert [s.name for s in stages] == ["build", ""] and stages[1].base == "build"
    env = stages[0].commands[0]
    assert env.args == ["A", "1", "B", '"two words"', "C", "'$lit'"]
    assert stages[0].commands[1].args == ["LEGACY", "value with spaces"]
    copy = stages[1].commands[0]
    assert copy.flags == {"from": "build", "chown": "1:2"} and copy.args == ["a", "b", "/d/"]


@pytest.mark.parametrize("word,expected", [
    ("$A", "a"), ("${A}", "a"), ("${UNSET}", ""), ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"),
    ("${EMPTY-dflt}", ""), ("${A:-dflt}", "a"), ("${A:+alt}", "alt"), ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"), ("${UNSET+alt}", ""), ('"$A b"', "a b"), ("'$A'", "$A"), ("\\$A", "$A"),
    ('"\\$A\\x"', "$A\\x"), ("pre${A}post", "prepost".replace("prepost", "preapost")), ("$", "$"),
    ("${A:-${B}}", "a"), ("${UNSET:-${B}x}", "bx"),
])
def test_lexer(word, expected):
    assert Lexer().word(word, {"A": "a", "B": "b", "EMPTY": ""}) == expected


def test_lexer_errors_and_backtick_escape():
    with pytest.raises(DockerfileError, match="is not allowed to be unset|must be set"):
        Lexer().word("${UNSET:?}", {})
    with pytest.raises(DockerfileError, match="UNSET: must be set"):
        Lexer().word("${UNSET:?must be set}", {})
    with pytest.raises(DockerfileError, match="missing '}'"):
        Lexer().word("${A", {"A": "1"})
    assert Lexer("`").word("`$A \\x", {"A": "1"}) == "$A \\x"


def test_dockerignore_rules():
    m = dockerignore.Matcher(dockerignore.read_patterns(
        "# comment\n/secret.key\nlogs\n!logs/keep.log\n**/*.tmp\n*.md\n!README.md\n"))
    assert m.excluded("secret.key") and not m.excluded("sub/secret.key")
    assert m.excluded("logs") and m.excluded("logs/a.log") and not m.excluded("logs/keep.log")
    assert m.excluded("a.tmp") and m.excluded("deep/er/b.tmp")
    assert m.excluded("x.md") and not m.excluded("README.md") and not m.excluded("docs/x.md")
    assert dockerignore.go_match("*.txt", "a.txt") and not dockerignore.go_match("*.txt", "d/a.txt")
    assert dockerignore.go_match("d/?.txt", "d/a.txt") and dockerignore.go_match("[a-c].txt", "b.txt")
