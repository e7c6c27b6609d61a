"""skiff.jsonfast against the standard json module: the same text out, the same values in,
and errors as ValueError (JSONDecodeError with the place for syntax errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skiff import jsonfast

DOCS = [
    {"a": [1, 2.5, None, True, False, "x\u00e9\n\"\t", {"b": {}}], "c": [], "d": -3, "e": 1e100},
    [], {}, "s", 3, None, [[[]]], {"k": [{"z": 1, "a": 2}]}, float("inf"),
]
SPECS = Path(__file__).resolve().parents[3] / "shared" / "specs"
DOCS += [json.loads(p.read_text()) for p in sorted(SPECS.glob("oci-runtime-schema/examples/config/good/*.json"))]


@pytest.mark.parametrize("doc", DOCS)
def test_same_as_json(doc):
    text = json.dumps(doc)
    assert jsonfast.dumps(doc) == text
    assert jsonfast.loads(text) == json.loads(text)
    assert jsonfast.loads(text.encode()) == json.loads(text)
    assert jsonfast.dumps(doc, indent=2) == json.dumps(doc, indent=2)
    assert jsonfast.dumps(doc, indent="\t", sort_keys=True) == json.dumps(doc, indent="\t", sort_keys=True)


def test_tuples_are_lists():
    assert jsonfast.dumps((1, (2,))) == "[1, [2]]"


@pytest.mark.parametrize("text", ["", "  ", "{", "{ nope", '{"a" 1}', "[1,]", "nul", '{"a":1} x'])
def test_malformed_is_a_value_error(text):
    with pytest.raises(ValueError):
        jsonfast.loads(text)


def test_syntax_error_says_where():
    with pytest.raises(json.JSONDecodeError) as e:
        jsonfast.loads('{"a": 1,\n "b" 2}')
    assert (e.value.lineno, e.value.colno) == (2, 6)


def test_unserialisable():
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonfast.dumps({"x": object()})
