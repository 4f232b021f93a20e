"""The Go-template subset against the examples of Docker's formatting docs
(docs.docker.com/engine/cli/formatting) and Go's text/template rules."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.gotemplate import TemplateError, render, table

CONTAINER: dict[str, Any] = {
    "Name": "/web", "Names": ["web", "www"], "Image": "nginx:1.25",
    "Mounts": [{"Type": "volume", "Name": "data"}],
    "Config": {"Labels": {"com.example.version": "1.0", "tier": "front"}},
    "NetworkSettings": {"Networks": {"front": {"IPAddress": "10.7.0.2"}, "back": {"IPAddress": "10.8.0.2"}},
                        "Ports": {"8787/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8787"}]}},
    "Internal": False, "Count": 3, "Ratio": 1.5, "Nothing": None, "Empty": [],
}


@pytest.mark.parametrize(("template", "expected"), [
    # Docker's formatting docs
    ('{{join .Names " , "}}', "web , www"),
    ("{{json .Mounts}}", '[{"Type":"volume","Name":"data"}]'),
    ("{{range $elem := .Names}}{{$elem}} {{end}}", "web www "),
    ("{{.Name | lower}}", "/web"),
    ("{{upper .Image}}", "NGINX:1.25"),
    ("{{title .Image}}", "Nginx:1.25"),
    ('{{split .Image ":"}}', "[nginx 1.25]"),
    ('{{index (split .Image ":") 1}}', "1.25"),
    ("{{pad .Image 1 2}}|", " nginx:1.25  |"),
    ("{{truncate .Image 5}}", "nginx"),
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "10.8.0.2 10.7.0.2 "),  # map: key order
    ('{{index .Config.Labels "com.example.version"}}', "1.0"),
    ('{{(index (index .NetworkSettings.Ports "8787/tcp") 0).HostPort}}', "8787"),
    ("{{println .Image}}", "nginx:1.25\n"),
    # fields, variables, printing as Go's fmt
    ("{{.}}" , None),
    ("{{.Config.Labels}}", "map[com.example.version:1.0 tier:front]"),
    ("{{.Missing}}", "<no value>"),
    ("{{.Nothing}}", "<nil>"),
    ("{{.Internal}} {{.Count}} {{.Ratio}}", "false 3 1.5"),
    ("{{$x := .Image}}{{$x}}", "nginx:1.25"),
    ("{{range $i, $n := .Names}}{{$i}}={{$n}};{{end}}", "0=web;1=www;"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}} {{end}}", "com.example.version:1.0 tier:front "),
    ("{{range .Names}}{{$.Image}} {{end}}", "nginx:1.25 nginx:1.25 "),
    ("{{range .Empty}}x{{else}}none{{end}}", "none"),
    # control flow and comparisons
    ("{{if .Internal}}yes{{else}}no{{end}}", "no"),
    ('{{if eq .Image "redis" "nginx:1.25"}}match{{end}}', "match"),
    ("{{if not .Internal}}ext{{else if .Count}}n{{end}}", "ext"),
    ("{{if .Internal}}a{{else if gt .Count 2}}b{{else}}c{{end}}", "b"),
    ("{{if and .Count .Names}}both{{end}}{{if or .Internal .Empty}}x{{else}}neither{{end}}", "bothneither"),
    ("{{if ne .Count 3}}x{{else}}three{{end}} {{if le .Ratio 1.5}}le{{end}}", "three le"),
    ("{{with .Config.Labels}}{{.tier}}{{end}}{{with .Empty}}x{{else}}-{{end}}", "front-"),
    ("{{len .Names}} {{len .Config.Labels}} {{len .Image}}", "2 2 10"),
    ("{{slice .Image 0 5}}", "nginx"),
    # pipelines, printf, trimming, literals
    ("{{.Image | upper | lower}}", "nginx:1.25"),
    ("{{.Config.Labels | json}}", '{"com.example.version":"1.0","tier":"front"}'),
    ('{{printf "%s has %d names (%.1f) %q %v" .Image 2 .Ratio "x" .Internal}}',
     'nginx:1.25 has 2 names (1.5) "x" false'),
    ('{{printf "%-6s|%5s|" "ab" "cd"}}', "ab    |   cd|"),
    ("a  {{- .Count -}}  b", "a3b"),
    ("{{`raw`}} {{\"q\\\"\"}}", 'raw q"'),
    ("{{print 1 2 \"a\" 3}}", "1 2a3"),
    ("{{/* a comment */}}ok", "ok"),
    ("tab\\tnewline\\n", "tab\tnewline\n"),  # as typed in a shell
])
def test_templates(template: str, expected: str | None) -> None:
    out = render(template, CONTAINER)
    if expected is None:
        assert out.startswith("map[Config:map[Labels:map[com.example.version:1.0 tier:front]] Count:3")
    else:
        assert out == expected


@pytest.mark.parametrize("bad", [
    "{{.Name", "{{}}", "{{end}}", "{{if .X}}", "{{else}}", "{{range .Names}}{{else}}{{else}}{{end}}",
    "{{nosuch .X}}", "{{.Name .Image}}", "{{$undefined}}", "{{index .Names 7}}", "{{len .Count}}",
    "{{lt .Image 3}}", '{{upper .Count}}', "{{(.Name}}", "{{.Name | }}", "{{%}}", "{{range .Count.X}}{{end}}",
])
def test_bad_templates_are_template_errors(bad: str) -> None:
    with pytest.raises(TemplateError) as err:
        render(bad, CONTAINER)
    assert str(err.value).startswith(("template parsing error", "template: "))


def test_table_header_and_alignment_as_docker() -> None:
    rows = [{"ID": "abc123", "Name": "bridge", "Driver": "bridge"},
            {"ID": "0123456789ab", "Name": "isolated_nw", "Driver": "null"}]
    out = table("table {{.ID}}\t{{.Name}}\t{{.Driver}}", rows, {"ID": "NETWORK ID"})
    assert out == ("NETWORK ID     NAME          DRIVER\n"
                   "abc123         bridge        bridge\n"
                   "0123456789ab   isolated_nw   null\n")
    assert table("table {{.Name}}", rows).splitlines() == ["NAME", "bridge", "isolated_nw"]
    assert table("table {{.ID}}\\t{{.Name}}", rows).splitlines()[0].split() == ["ID", "NAME"]


ATOMS = ["{{", "}}", "{{-", "-}}", ".Name", ".Names", ".Config.Labels", ".Count", "$", "$x", ":=", "|", "(",
         ")", '"a"', "`b`", "1", "2.5", "if", "else", "end", "range", "with", "eq", "len", "index", "json",
         "printf", '"%d"', "not", "and", " ", ",", "=", "nil", "true", "slice", "print", "split", "join",
         "}", "%"]


@settings(max_examples=2000, derandomize=True)
@given(st.lists(st.sampled_from(ATOMS), max_size=14).map("".join))
def test_any_text_renders_or_is_a_template_error(template: str) -> None:
    with contextlib.suppress(TemplateError):
        assert isinstance(render(template, CONTAINER), str)
