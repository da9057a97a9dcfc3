"""google.api.http path templates: parsing, matching on the raw path, and precedence."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import unquote

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# RFC 3986 pchar without the characters that structure a template.
_LITERAL = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()+,;=@:]|%[0-9A-Fa-f]{2})+")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED_SLASH = re.compile(r"(%2[Ff])")


class TemplateError(ValueError):
    """A path template that does not follow the google.api.http grammar."""


class PathDecodeError(ValueError):
    """A matched path whose variable text is not valid percent-encoded UTF-8."""


class SegmentKind(enum.IntEnum):
    """Kinds of template segment; the value is the precedence rank (lower is more specific)."""

    LITERAL = 0
    SINGLE = 1
    MULTI = 2


@dataclass(frozen=True)
class Segment:
    """One template segment: a literal (stored decoded), `*` or `**`."""

    kind: SegmentKind
    literal: str = ""


@dataclass(frozen=True)
class Variable:
    """A `{field.path=...}` capture covering segments [start, end) of its template."""

    field_path: str
    start: int
    end: int
    multi_segment: bool


@dataclass(frozen=True)
class PathTemplate:
    """A parsed path template; build one with `PathTemplate.parse`."""

    source: str
    segments: tuple[Segment, ...]
    variables: tuple[Variable, ...]
    verb: str | None

    @classmethod
    def parse(cls, source: str) -> PathTemplate:
        return _Parser(source).parse()

    @property
    def precedence(self) -> tuple[bool, tuple[int, ...]]:
        """Sort key: verb templates first, then literal before `*` before `**`, segment by segment."""
        return (self.verb is None, tuple(segment.kind for segment in self.segments))

    @property
    def shape(self) -> tuple[tuple[tuple[SegmentKind, str], ...], str | None]:
        """What the template matches, variable names aside; two templates with one shape conflict."""
        return (tuple((segment.kind, segment.literal) for segment in self.segments), self.verb)

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Match a raw (percent-encoded) path; return the decoded variables by field path, or None.

        Raises PathDecodeError when the path matches but a captured value is badly encoded.
        """
        if not raw_path.startswith("/"):
            return None
        path = raw_path[1:]
        if self.verb is not None:
            colon = path.rfind(":")
            if colon <= path.rfind("/") or _decode(path[colon + 1 :]) != self.verb:
                return None
            path = path[:colon]
        parts = path.split("/")
        if not self._segments_match(parts):
            return None
        values: dict[str, str] = {}
        for variable in self.variables:
            end = len(parts) if self.segments[variable.end - 1].kind is SegmentKind.MULTI else variable.end
            text = "/".join(parts[variable.start : end])
            values[variable.field_path] = _decode_multi(text) if variable.multi_segment else _decode(text)
        return values

    def _segments_match(self, parts: list[str]) -> bool:
        segments = self.segments
        tail = segments[-1].kind is SegmentKind.MULTI
        fixed = len(segments) - 1 if tail else len(segments)
        if len(parts) < fixed or (not tail and len(parts) != fixed):
            return False
        if any(part == "" for part in parts):
            return fixed == 0 and parts == [""]
        for segment, part in zip(segments[:fixed], parts, strict=False):
            if segment.kind is SegmentKind.LITERAL and _decode(part) != segment.literal:
                return False
        return True

    def __str__(self) -> str:
        return self.source


def _decode(text: str) -> str:
    if _BAD_ESCAPE.search(text):
        raise PathDecodeError(f"invalid percent-encoding in path: {text!r}")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise PathDecodeError(f"path is not valid UTF-8: {text!r}") from exc


def _decode_multi(text: str) -> str:
    # http.proto: multi-segment variables are decoded except %2F/%2f, which stay as they were sent.
    return "".join(part if _ENCODED_SLASH.fullmatch(part) else _decode(part) for part in _ENCODED_SLASH.split(text))


class _Parser:
    """Recursive descent over `Template = "/" Segments [ Verb ]`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0
        self.segments: list[Segment] = []
        self.variables: list[Variable] = []

    def parse(self) -> PathTemplate:
        text, verb = self._split_verb()
        self.text = text
        if not text.startswith("/"):
            self._fail("must start with '/'")
        self.pos = 1
        self._segments(inside_variable=False)
        if self.pos != len(text):
            self._fail(f"unexpected {text[self.pos]!r} at offset {self.pos}")
        for index, segment in enumerate(self.segments):
            if segment.kind is SegmentKind.MULTI and index != len(self.segments) - 1:
                self._fail("'**' must be the last segment")
        fields = [variable.field_path for variable in self.variables]
        if len(set(fields)) != len(fields):
            self._fail("a field is bound twice")
        return PathTemplate(self.source, tuple(self.segments), tuple(self.variables), verb)

    def _split_verb(self) -> tuple[str, str | None]:
        depth, last_slash, last_colon = 0, -1, -1
        for index, char in enumerate(self.source):
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
            elif depth == 0 and char == "/":
                last_slash = index
            elif depth == 0 and char == ":":
                last_colon = index
        if last_colon <= last_slash:
            return self.source, None
        verb = self.source[last_colon + 1 :]
        if not _LITERAL.fullmatch(verb):
            self._fail(f"invalid verb {verb!r}")
        return self.source[:last_colon], unquote(verb)

    def _segments(self, *, inside_variable: bool) -> None:
        self._segment(inside_variable=inside_variable)
        while self.pos < len(self.text) and self.text[self.pos] == "/":
            self.pos += 1
            self._segment(inside_variable=inside_variable)

    def _segment(self, *, inside_variable: bool) -> None:
        text = self.text
        if text.startswith("**", self.pos):
            self.pos += 2
            self.segments.append(Segment(SegmentKind.MULTI))
        elif text.startswith("*", self.pos):
            self.pos += 1
            self.segments.append(Segment(SegmentKind.SINGLE))
        elif text.startswith("{", self.pos):
            if inside_variable:
                self._fail("variables must not be nested")
            self._variable()
        else:
            found = _LITERAL.match(text, self.pos)
            if found is None:
                self._fail(f"empty or invalid segment at offset {self.pos}")
            self.pos = found.end()
            self.segments.append(Segment(SegmentKind.LITERAL, unquote(found.group())))

    def _variable(self) -> None:
        end = self.text.find("}", self.pos)
        if end == -1:
            self._fail("unclosed '{'")
        field_path, equals, _ = self.text[self.pos + 1 : end].partition("=")
        if not all(_IDENT.fullmatch(part) for part in field_path.split(".")):
            self._fail(f"invalid field path {field_path!r}")
        self.pos += 1 + len(field_path)
        start = len(self.segments)
        if equals:
            self.pos += 1
            self._segments(inside_variable=True)
        else:
            self.segments.append(Segment(SegmentKind.SINGLE))
        if self.pos != end:
            self._fail(f"unexpected {self.text[self.pos]!r} in variable {field_path!r}")
        self.pos = end + 1
        covered = self.segments[start:]
        multi = len(covered) > 1 or covered[0].kind is SegmentKind.MULTI
        self.variables.append(Variable(field_path, start, len(self.segments), multi))

    def _fail(self, reason: str) -> NoReturn:
        raise TemplateError(f"invalid path template {self.source!r}: {reason}")
