"""The command-line grammar: pflag's flag forms, cobra's messages and exit codes, docker's
help layout (the expected texts are docker 28's, with `docker` read as `skiff`)."""

from __future__ import annotations

import io

import pytest

from skiff.cli.flags import Command, filter_flag, flag, flag_usages, option, repeated
from skiff.cli.main import Context, run
from skiff.errors import InvalidArgument, UsageError


def images_command() -> Command:
    return Command("skiff images", "[OPTIONS] [REPOSITORY[:TAG]]", "List images", [
        flag("all", "a", "Show all images"), flag("quiet", "q", "Only show image IDs"),
        filter_flag(), option("format", "", "Format"), repeated("change", "c", "Change")],
        (0, 1))


def test_flag_forms() -> None:
    cmd = images_command()
    opts = cmd.parse(["-aq", "busybox", "--format={{.ID}}", "-f", "dangling=true",
                      "-flabel=x=y", "--filter=a=b", "-c", "CMD x", "-c=ENV a"])
    assert opts.all and opts.quiet and opts.args == ["busybox"]
    assert opts.format == "{{.ID}}"
    assert opts.filter == ["dangling=true", "label=x=y", "a=b"]
    assert opts.change == ["CMD x", "ENV a"]
    opts = cmd.parse(["--all=false", "-q=true", "--", "-a"])
    assert not opts.all and opts.quiet and opts.args == ["-a"]
    assert cmd.parse(["-"]).args == ["-"]
    assert cmd.parse(["--format", "x"]).given("format")
    assert not cmd.parse([]).given("format")


@pytest.mark.parametrize("argv,first_line", [
    (["--bogus"], "unknown flag: --bogus"),
    (["-x"], "unknown shorthand flag: 'x' in -x"),
    (["-qx"], "unknown shorthand flag: 'x' in -x"),
    (["--format"], "flag needs an argument: --format"),
    (["-f"], "flag needs an argument: 'f' in -f"),
    (["--all=x"], 'invalid argument "x" for "-a, --all" flag: strconv.ParseBool: parsing "x": invalid syntax'),
    (["-f", "foo"], 'invalid argument "foo" for "-f, --filter" flag: bad format of filter (expected name=value)'),
])
def test_flag_errors(argv: list[str], first_line: str) -> None:
    with pytest.raises(UsageError) as exc:
        images_command().parse(argv)
    assert str(exc.value) == (f"{first_line}\n\nUsage:  skiff images [OPTIONS] [REPOSITORY[:TAG]]\n\n"
                              "Run 'skiff images --help' for more information")
    assert not exc.value.help


@pytest.mark.parametrize("nargs,argv,problem,see", [
    ((1, 1), [], "requires 1 argument", "Run"),
    ((2, 2), ["a"], "requires 2 arguments", "Run"),
    ((1, None), [], "requires at least 1 argument", "See"),
    ((0, 1), ["a", "b"], "requires at most 1 argument", "Run"),
    ((0, 0), ["a"], "accepts no arguments", "Run"),
    ((1, 2), [], "requires at least 1 and at most 2 arguments", "Run"),
])
def test_argument_counts(nargs: tuple[int, int | None], argv: list[str], problem: str, see: str) -> None:
    cmd = Command("skiff x", "ARGS", "X", [], nargs)
    with pytest.raises(InvalidArgument) as exc:
        cmd.parse(argv)
    assert str(exc.value) == (f"skiff: 'skiff x' {problem}\n\nUsage:  skiff x ARGS\n\n"
                              f"{see} 'skiff x --help' for more information")


def test_help_layout() -> None:
    with pytest.raises(UsageError) as exc:
        Command("skiff rmi", "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", [
            flag("force", "f", "Force removal of the image"),
            flag("no-prune", "", "Do not delete untagged parents")], (1, None),
            aliases="skiff image rm, skiff image remove, skiff rmi").parse(["x", "--help"])
    assert exc.value.help
    assert str(exc.value) == """Usage:  skiff rmi [OPTIONS] IMAGE [IMAGE...]

Remove one or more images

Aliases:
  skiff image rm, skiff image remove, skiff rmi

Options:
  -f, --force      Force removal of the image
      --no-prune   Do not delete untagged parents
"""


def test_help_wraps_as_pflag_does() -> None:
    text = flag_usages([
        option("password", "p", "Password or Personal Access Token (PAT)"),
        flag("password-stdin", "", "Take the Password or Personal Access Token (PAT) from stdin"),
        option("username", "u", "Username"),
        option("log-level", "l", 'Set the logging level ("debug", "info", "warn", "error", "fatal")',
               "info"),
    ], width=79)
    assert text.splitlines() == [
        "  -p, --password string    Password or Personal Access Token (PAT)",
        "      --password-stdin     Take the Password or Personal Access Token",
        "                           (PAT) from stdin",
        "  -u, --username string    Username",
        '  -l, --log-level string   Set the logging level ("debug", "info",',
        '                           "warn", "error", "fatal") (default "info")',
    ]


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(argv, Context(out=out, err=err, stdin=io.StringIO()))
    return code, out.getvalue(), err.getvalue()


def test_exit_codes_and_messages_of_the_whole_command() -> None:
    code, out, err = cli(["--version"])
    assert (code, err) == (0, "") and out.startswith("skiff version ")
    assert cli(["-v"])[1] == out
    code, _, err = cli(["images", "--bogus"])
    assert code == 125 and err.startswith("unknown flag: --bogus\n\nUsage:  skiff images")
    code, _, err = cli(["--bogus"])
    assert code == 125 and "Usage:  skiff [OPTIONS] COMMAND [ARG...]" in err
    code, _, err = cli(["pull"])
    assert code == 1 and err.startswith("skiff: 'skiff pull' requires 1 argument")
    code, _, err = cli(["bogus"])
    assert (code, err) == (1, "skiff: unknown command: skiff bogus\n\n"
                              "Run 'skiff --help' for more information\n")
    code, _, err = cli(["image", "bogus"])
    assert code == 1 and err.startswith("skiff: unknown command: skiff image bogus\n\nUsage:  skiff image")


def test_help_everywhere() -> None:
    code, out, _ = cli([])
    assert code == 0 and out.startswith("Usage:  skiff [OPTIONS] COMMAND")
    # docker's order: run first, then ps, then the image commands
    assert "Common Commands:\n  run         Create and run a new container from an image\n" \
        "  ps          List containers\n  pull        Download an image from a registry" in out
    assert cli(["--help"])[1] == out and cli(["help"])[1] == out
    code, out, _ = cli(["image"])
    assert code == 0 and "  ls          List images" in out
    code, out, _ = cli(["image", "ls", "--help"])
    assert code == 0 and out.startswith("Usage:  skiff image ls [OPTIONS] [REPOSITORY[:TAG]]")
    assert "Aliases:\n  skiff image ls, skiff image list, skiff images" in out
    assert cli(["help", "images"])[1] == cli(["images", "-h"])[1]
    code, out, _ = cli(["system", "info", "--help"])
    assert code == 0 and out.startswith("Usage:  skiff system info [OPTIONS]")
