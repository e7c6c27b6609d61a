"""The Go-template subset behind --format: fields, json, tables, pipes, control structures,
functions, Go's printing of values, and docker's messages for bad templates (the expected
strings are what docker 28 prints for the same templates)."""

from __future__ import annotations

import pytest

from skiff.cli.template import Row, TemplateError, json_filters, parse, render_rows

INSPECT = {"Id": "sha256:abc", "RepoTags": ["busybox:latest", "b:1"], "Size": 4261550,
           "Config": {"Env": ["PATH=/bin", "A=b"], "Labels": {"z": "1", "a": "<2>"}, "Cmd": None},
           "Ratio": 0.25, "Empty": "", "Big": 1234567.0}


def run(text: str, data: object = INSPECT) -> str:
    return parse(text).execute(data)


@pytest.mark.parametrize("text,out", [
    ("{{.Id}} {{.Size}}", "sha256:abc 4261550"),
    ("{{.Config.Env}}", "[PATH=/bin A=b]"),
    ("{{.Config.Labels}}", "map[a:<2> z:1]"),
    ("{{.Config.Cmd}}", "<nil>"),
    ("{{json .Config.Labels}}", '{"a":"<2>","z":"1"}'),
    ("{{json .RepoTags}}", '["busybox:latest","b:1"]'),
    ("{{index .RepoTags 1}} {{len .RepoTags}}", "b:1 2"),
    ("{{index .Config.Labels \"z\"}}", "1"),
    ("{{range .RepoTags}}[{{.}}]{{end}}", "[busybox:latest][b:1]"),
    ("{{range $i, $t := .RepoTags}}{{$i}}={{$t}} {{end}}", "0=busybox:latest 1=b:1 "),
    ("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}};{{end}}", "a:<2>;z:1;"),
    ("{{range .Config.Cmd}}x{{else}}none{{end}}", "none"),
    ("{{if .Empty}}a{{else if .Size}}b{{else}}c{{end}}", "b"),
    ("{{if and .Size (not .Empty)}}yes{{end}}", "yes"),
    ("{{with .Config}}{{len .Env}}{{end}}", "2"),
    ("{{$x := .Size}}{{$x}} {{$.Id}}", "4261550 sha256:abc"),
    ("{{.Id | upper}} {{lower \"ABC\"}} {{title \"ab cd\"}}", "SHA256:ABC abc Ab Cd"),
    ("{{join (split .Id \":\") \",\"}}", "sha256,abc"),
    ("{{truncate .Id 3}}|{{pad \"x\" 1 2}}|{{pad \"\" 1 2}}", "sha| x  |"),
    ('{{printf "%s-%d|%5s|%-4s|%q|%T" "a" 7 "b" "c" "d" .Size}}', 'a-7|    b|c   |"d"|int64'),
    ("{{println .Size}}", "4261550\n"),
    ("{{.Ratio}} {{.Big}}", "0.25 1.234567e+06"),
    ("{{eq .Size 4261550}} {{ne .Empty \"\"}} {{lt 1 2}} {{ge 2 3}}", "true false true false"),
    ("{{slice .Id 0 6}}", "sha256"),
    ("a  {{- .Size -}}  b", "a4261550b"),
    ("x{{/* a comment */}}y {{- /* trimmed */ -}} z", "xyz"),
    ('{{"quoted\\t\\"}}"}} {{`raw\\t`}}', 'quoted\t"}} raw\\t'),
    ("{{range .RepoTags}}{{if eq . \"b:1\"}}{{break}}{{end}}{{.}}{{end}}", "busybox:latest"),
    ("{{range .RepoTags}}{{if eq . \"busybox:latest\"}}{{continue}}{{end}}{{.}}{{end}}", "b:1"),
    ("{{(index .RepoTags 0)}} {{(.Config).Env}}", "busybox:latest [PATH=/bin A=b]"),
])
def test_templates(text: str, out: str) -> None:
    assert run(text) == out


@pytest.mark.parametrize("text,message", [
    ("{{.Missing}}", 'template: :1:2: executing "" at <.Missing>: map has no entry for key "Missing"'),
    ("{{.Id", "template: :1: unclosed action"),
    ("{{nope .Id}}", 'template: :1: function "nope" not defined'),
    ("{{if .Id}}x", "template: :1: unexpected EOF"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{.Size.X}}", "can't evaluate field X in type int64"),
    ("{{.Id 1}}", "can't give argument to non-function .Id"),
])
def test_bad_templates(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as exc:
        run(text)
    assert str(exc.value).startswith("template parsing error: ")
    assert message in str(exc.value)


class Item(Row):
    fields = ("ID", "Name")
    headers = {"ID": "ITEM ID", "Name": "NAME"}
    type_name = "*formatter.itemContext"

    def __init__(self, ident: str, name: str) -> None:
        self.ident, self.name = ident, name

    def ID(self) -> str:
        return self.ident

    def Name(self) -> str:
        return self.name


def test_rows_tables_and_json() -> None:
    rows = [Item("1", "<a>"), Item("22", "b")]
    assert render_rows("table {{.ID}}\\t{{.Name}}", rows, Item.headers) == (
        "ITEM ID   NAME\n1         <a>\n22        b\n")
    assert render_rows("{{.ID}}:{{.Name}}", rows, Item.headers) == "1:<a>\n22:b\n"
    assert render_rows("json", rows, Item.headers).splitlines()[0] == '{"ID":"1","Name":"\\u003ca\\u003e"}'
    assert render_rows("table {{upper .Name}}", rows, Item.headers).splitlines()[0] == "NAME"
    assert render_rows("table", [], {}) == "\n"
    with pytest.raises(TemplateError, match=r"can't evaluate field Foo in type \*formatter.itemContext"):
        render_rows("{{.Foo}}", rows, Item.headers)
    assert render_rows("x\\ty\\n{{.ID}}", rows[:1], Item.headers) == "x\ty\n1\n"


def test_filters_json() -> None:
    assert json_filters([]) is None
    assert json_filters(["dangling=true", "label=a=b", "label=c", "Before=busybox"]) == (
        '{"before":{"busybox":true},"dangling":{"true":true},"label":{"a=b":true,"c":true}}')
