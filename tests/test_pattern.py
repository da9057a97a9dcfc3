"""Path templates: grammar, matching on the raw path, decoding and precedence."""

from __future__ import annotations

import pytest

from gateway.pattern import PathDecodeError, PathTemplate, SegmentKind, TemplateError


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/v1/messages/{message_id}", "/v1/messages/123", {"message_id": "123"}),
        ("/v1/{name=messages/*}", "/v1/messages/123", {"name": "messages/123"}),
        ("/v1/messages/{message_id}/{sub.subfield}", "/v1/messages/1/s", {"message_id": "1", "sub.subfield": "s"}),
        ("/v1/{name=shelves/*/books/**}", "/v1/shelves/1/books/2/3", {"name": "shelves/1/books/2/3"}),
        ("/v1/{name=shelves/*/books/**}", "/v1/shelves/1/books", {"name": "shelves/1/books"}),
        ("/v1/{name=**}", "/v1/a/b", {"name": "a/b"}),
        ("/v1/{name=**}", "/v1", {"name": ""}),
        ("/v1/*/x/**", "/v1/a/x/b/c", {}),
        ("/v1/{id}:cancel", "/v1/7:cancel", {"id": "7"}),
        ("/v1/{name=ops/**}:cancel", "/v1/ops/a/b:cancel", {"name": "ops/a/b"}),
        ("/v1/{id}", "/v1/a:b", {"id": "a:b"}),
        ("/v1/{id}", "/v1/a%2Fb%20%C3%A9", {"id": "a/b é"}),
        ("/v1/{name=a/*}", "/v1/a/x%2Fy%2f%20z", {"name": "a/x%2Fy%2f z"}),
        ("/v1/{name=**}", "/v1/x%252F", {"name": "x%2F"}),
        ("/v1/l%20it/{id}", "/v1/l%20it/1", {"id": "1"}),
        ("/v1/{id}:do%20it", "/v1/1:do%20it", {"id": "1"}),
    ],
)
def test_match(template: str, path: str, expected: dict[str, str]) -> None:
    assert PathTemplate.parse(template).match(path) == expected


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/v1/messages/{message_id}", "/v1/messages"),
        ("/v1/messages/{message_id}", "/v1/messages/"),
        ("/v1/messages/{message_id}", "/v1/messages/1/2"),
        ("/v1/messages/{message_id}", "/v1/other/1"),
        ("/v1/messages/{message_id}", "v1/messages/1"),
        ("/v1/{name=messages/*}", "/v1/messages/1/2"),
        ("/v1/{id}:cancel", "/v1/7"),
        ("/v1/{id}:cancel", "/v1/7:undo"),
        ("/v1/{id}:cancel", "/v1/x:cancel/7"),
        ("/v1/{name=**}", "/v1/a//b"),
        ("/v1/*", "/v1/"),
    ],
)
def test_no_match(template: str, path: str) -> None:
    assert PathTemplate.parse(template).match(path) is None


@pytest.mark.parametrize("path", ["/v1/%ZZ", "/v1/%FF", "/v1/abc%"])
def test_bad_encoding_in_a_variable_raises(path: str) -> None:
    with pytest.raises(PathDecodeError):
        PathTemplate.parse("/v1/{id}").match(path)


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("v1/x", "must start with '/'"),
        ("/", "empty or invalid segment at offset 1"),
        ("/v1//x", "empty or invalid segment at offset 4"),
        ("/v1/x/", "empty or invalid segment at offset 6"),
        ("/v1/**/x", "'**' must be the last segment"),
        ("/v1/{name=**}/x", "'**' must be the last segment"),
        ("/v1/{a={b}}", "variables must not be nested"),
        ("/v1/{a}/{a}", "a field is bound twice"),
        ("/v1/{a", "unclosed '{'"),
        ("/v1/{1a}", "invalid field path '1a'"),
        ("/v1/{a..b}", "invalid field path 'a..b'"),
        ("/v1/{a=}", "empty or invalid segment at offset 7"),
        ("/v1/x:", "invalid verb ''"),
        ("/v1/*x", "unexpected 'x' at offset 5"),
        ("/v1/a b", "unexpected ' ' at offset 5"),
        ("/v1/{a}x", "unexpected 'x' at offset 7"),
    ],
)
def test_invalid_templates(template: str, reason: str) -> None:
    with pytest.raises(TemplateError) as caught:
        PathTemplate.parse(template)
    assert str(caught.value) == f"invalid path template {template!r}: {reason}"


def test_structure() -> None:
    template = PathTemplate.parse("/v1/{name=shelves/*/books/**}:get")
    assert [segment.kind for segment in template.segments] == [
        SegmentKind.LITERAL,
        SegmentKind.LITERAL,
        SegmentKind.SINGLE,
        SegmentKind.LITERAL,
        SegmentKind.MULTI,
    ]
    assert [(v.field_path, v.start, v.end, v.multi_segment) for v in template.variables] == [("name", 1, 5, True)]
    assert template.verb == "get"
    assert PathTemplate.parse("/v1/{id}").shape == PathTemplate.parse("/v1/{other=*}").shape


def test_precedence_prefers_verbs_then_literals_then_single_wildcards() -> None:
    sources = ["/v1/{name=**}", "/v1/{a}/{b}", "/v1/x/{b}", "/v1/{a}/y", "/v1/x/y", "/v1/{name=**}:do", "/v1"]
    ordered = sorted((PathTemplate.parse(source) for source in sources), key=lambda t: t.precedence)
    assert [t.source for t in ordered] == [
        "/v1/{name=**}:do",
        "/v1",
        "/v1/x/y",
        "/v1/x/{b}",
        "/v1/{a}/y",
        "/v1/{a}/{b}",
        "/v1/{name=**}",
    ]
