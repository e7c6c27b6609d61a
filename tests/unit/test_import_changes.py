"""``--change`` lines: Dockerfile syntax parsed as BuildKit parses it (JSON vs shell form,
ENV and LABEL pairs with quotes and escapes, flags, continuations, directives), words
expanded as its shell lexer expands them, and the instructions a commit or import may make
applied to a container config as moby applies them — with Docker's error texts, and
nothing applied when any change is bad."""

from __future__ import annotations

import pytest

from skiff.errors import InvalidArgument
from skiff.store.changes import apply_changes, go_duration
from skiff.store.dockerfile_syntax import InstructionError, expand, expand_words, parse


def changed(*changes: str, base: dict[str, object] | None = None) -> dict[str, object]:
    return apply_changes(base or {}, list(changes))


# -- the parser ---------------------------------------------------------------------------
def test_json_and_shell_forms() -> None:
    [shell, exec_form, broken] = parse('CMD echo "hi there"\ncmd ["a", "b c"]\nCMD [a,').instructions
    assert (shell.keyword, shell.args, shell.json) == ("cmd", ('echo "hi there"',), False)
    assert (exec_form.args, exec_form.json) == (("a", "b c"), True)
    assert (broken.args, broken.json) == (("[a,",), False)  # not JSON: the shell form
    with pytest.raises(InvalidArgument, match="arrays must be comprised of strings only"):
        parse('CMD ["a", 1]')


def test_env_and_label_pairs_keep_their_quotes_for_the_lexer() -> None:
    [env, legacy, label] = parse('ENV A=1 B="two words" C=x\\ y D=\'$no\'\n'
                                 'ENV LEGACY the whole "rest"\n'
                                 'LABEL "com.x y"=z version=1').instructions
    assert env.args == ("A", "1", "B", '"two words"', "C", "x\\ y", "D", "'$no'")
    assert legacy.args == ("LEGACY", 'the whole "rest"')
    assert label.args == ('"com.x y"', "z", "version", "1")
    with pytest.raises(InstructionError, match="ENV must have two arguments"):
        parse("ENV ALONE")
    with pytest.raises(InstructionError, match="can't find = in \"B\". Must be of the form"):
        parse("ENV A=1 B")


def test_lines_comments_continuations_and_the_escape_directive() -> None:
    parsed = parse("# escape=`\n\n# a comment\nWORKDIR C:\\x `\n  # inside\n\n  \\y\nUSER me")
    assert parsed.escape == "`"
    workdir, user = parsed.instructions
    assert workdir.args == ("C:\\x   \\y",) and workdir.line == 4
    assert (user.keyword, user.line) == ("user", 8)
    with pytest.raises(InstructionError, match="file with no instructions"):
        parse("# nothing\n\n")
    with pytest.raises(InstructionError) as info:
        parse("USER a\n\nENV broken")
    assert info.value.line == 3


def test_flags_and_healthcheck_and_onbuild() -> None:
    [health, onbuild, expose] = parse("HEALTHCHECK --interval 5s --retries=3 CMD curl -f x\n"
                                      "ONBUILD RUN echo $HOME\nEXPOSE 80 53/udp").instructions
    assert health.flags == ("--interval=5s", "--retries=3")
    assert health.args == ("CMD", "curl -f x")
    assert onbuild.args == ("run", "echo $HOME") and onbuild.trigger is not None
    assert expose.args == ("80", "53/udp")


# -- the lexer ----------------------------------------------------------------------------
@pytest.mark.parametrize("word, want", [
    ('"$A and \\$B"', "1 and $B"),
    ("'$A'", "$A"),
    ("${A}x", "1x"),
    ("${NOPE:-def} ${A:-def}", "def 1"),
    ("${EMPTY:-e} ${EMPTY-e}", "e "),
    ("${A:+set} ${NOPE:+set}.", "set ."),
    ("a\\ b\\\\c", "a b\\c"),
    ('"a\\nb"', "a\\nb"),
    ("$", "$"),
    ("$NOPE-", "-"),
])
def test_words_expand_like_dockers_lexer(word: str, want: str) -> None:
    assert expand(word, ["A=1", "EMPTY="]) == want


def test_word_splitting_and_lexer_errors() -> None:
    assert expand_words('$P "x y" \'\'', ["P=80  443"]) == ["80", "443", "x y"]
    with pytest.raises(InvalidArgument, match="failed to process \"\\\\\"abc\": unexpected end of "
                                              "statement while looking for matching double-quote"):
        expand('"abc', [])
    with pytest.raises(InvalidArgument, match="syntax error: missing '}'"):
        expand("${A", [])
    with pytest.raises(InvalidArgument, match="NEED: is not allowed to be unset"):
        expand("${NEED:?}", [])
    with pytest.raises(InvalidArgument, match="NEED: give it"):
        expand("${NEED:?give it}", ["NEED="])


# -- applying -----------------------------------------------------------------------------
def test_cmd_and_entrypoint() -> None:
    assert changed("CMD echo hi") == {"Cmd": ["/bin/sh", "-c", "echo hi"]}
    assert changed('CMD ["echo", "hi"]') == {"Cmd": ["echo", "hi"]}
    assert changed("CMD echo", base={"Shell": ["/bin/bash", "-c"]})["Cmd"] == \
        ["/bin/bash", "-c", "echo"]
    # an ENTRYPOINT drops the Cmd it was given, unless a change set that Cmd
    base = {"Cmd": ["old"], "Entrypoint": None}
    assert changed('ENTRYPOINT ["run"]', base=base) == {"Cmd": None, "Entrypoint": ["run"]}
    assert changed('CMD ["new"]', 'ENTRYPOINT ["run"]', base=base)["Cmd"] == ["new"]
    assert changed("ENTRYPOINT []")["Entrypoint"] == []


def test_env_expands_against_the_env_before_it() -> None:
    base = {"Env": ["PATH=/bin", "abc=hello"]}
    got = changed('ENV abc=bye def=$abc', 'ENV PATH=$PATH:/opt/bin X="a b" Y=c\\ d',
                  "ENV OLD style value", base=base)
    assert got["Env"] == ["PATH=/bin:/opt/bin", "abc=bye", "def=hello", "X=a b", "Y=c d",
                          "OLD=style value"]
    assert base == {"Env": ["PATH=/bin", "abc=hello"]}  # the given config is not touched


def test_labels_workdir_user_volume_stopsignal_onbuild() -> None:
    got = changed('LABEL "a b"=c d="e f"', "WORKDIR /srv", "WORKDIR app/../www", "USER 1000:1000",
                  'VOLUME ["/data", "/logs"]', "VOLUME /cache", "STOPSIGNAL SIGINT",
                  "ONBUILD RUN make", "ENV D=/x", "WORKDIR $D/y")
    assert got["Labels"] == {"a b": "c", "d": "e f"}
    assert got["WorkingDir"] == "/x/y"
    assert got["User"] == "1000:1000"
    assert got["Volumes"] == {"/data": {}, "/logs": {}, "/cache": {}}
    assert got["StopSignal"] == "SIGINT"
    assert got["OnBuild"] == ["RUN make"]
    assert changed("WORKDIR /srv", "WORKDIR app/../www")["WorkingDir"] == "/srv/www"


def test_expose() -> None:
    got = changed("EXPOSE 80 53/udp 8000-8002/TCP", "ENV PORTS='9000 9001'", "EXPOSE $PORTS")
    assert got["ExposedPorts"] == {f"{p}/tcp": {} for p in (80, 8000, 8001, 8002, 9000, 9001)} | \
        {"53/udp": {}}
    with pytest.raises(InvalidArgument, match="invalid containerPort: http"):
        changed("EXPOSE http")
    with pytest.raises(InvalidArgument, match="invalid proto: foo"):
        changed("EXPOSE 80/foo")


def test_healthcheck() -> None:
    got = changed("HEALTHCHECK --interval 1m30s --timeout=3s --retries=2 CMD curl -f localhost")
    assert got["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f localhost"],
                                  "Interval": 90 * 10**9, "Timeout": 3 * 10**9, "Retries": 2}
    assert changed('HEALTHCHECK CMD ["true"]')["Healthcheck"] == {"Test": ["CMD", "true"]}
    assert changed("HEALTHCHECK NONE")["Healthcheck"] == {"Test": ["NONE"]}
    for bad, text in [("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
                      ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
                      ("HEALTHCHECK RUN x", 'Unknown type "RUN" in HEALTHCHECK'),
                      ("HEALTHCHECK --interval=1us CMD x", 'Interval "interval" cannot be less'),
                      ("HEALTHCHECK --interval=5 CMD x", 'missing unit in duration "5"'),
                      ("HEALTHCHECK --retries=-1 CMD x", r"--retries cannot be negative \(-1\)"),
                      ("HEALTHCHECK --bogus=1 CMD x", "unknown flag: bogus")]:
        with pytest.raises(InvalidArgument, match=text):
            changed(bad)


@pytest.mark.parametrize("change, text", [
    ("RUN echo hi", "run is not a valid change command"),
    ("FOO bar", "foo is not a valid change command"),
    ("FROM scratch", "from is not a valid change command"),
    ("USER", "USER requires exactly one argument"),
    ("WORKDIR", "WORKDIR requires exactly one argument"),
    ("ENV", "ENV requires at least one argument"),
    ("ENV =x", "ENV names can not be blank"),
    ("EXPOSE", "EXPOSE requires at least one argument"),
    ("VOLUME", "VOLUME requires at least one argument"),
    ("STOPSIGNAL NOPE", "Invalid signal: NOPE"),
    ("STOPSIGNAL 0", "Invalid signal: 0"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("ENV --foo=1 A=B", "unknown flag: foo"),
])
def test_bad_changes_are_refused_and_none_is_applied(change: str, text: str) -> None:
    base = {"Env": ["A=1"]}
    with pytest.raises(InvalidArgument, match=text):
        apply_changes(base, ["ENV B=2", change])
    assert base == {"Env": ["A=1"]}


def test_go_durations() -> None:
    assert go_duration("1h2m3.5s") == (3600 + 120 + 3) * 10**9 + 5 * 10**8
    assert go_duration("300ms") == 300 * 10**6
    assert go_duration("-1.5h") == -5400 * 10**9
    assert go_duration("0") == 0
    with pytest.raises(InvalidArgument, match='time: invalid duration "abc"'):
        go_duration("abc")
    with pytest.raises(InvalidArgument, match='time: unknown unit "x" in duration "5x"'):
        go_duration("5x")


def test_no_changes_and_empty_ones() -> None:
    base = {"Cmd": ["sh"]}
    assert apply_changes(base, []) == base
    with pytest.raises(InvalidArgument, match="file with no instructions"):
        apply_changes(base, ["", "  # only a comment"])
