"""The route table: HttpRule bindings read from service descriptors, validated at start-up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf import message as message_lib
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor

from gateway.pattern import PathTemplate, TemplateError

_BODYLESS_METHODS = frozenset({"GET", "DELETE"})


class RouteError(ValueError):
    """A google.api.http binding that cannot be served; raised while building the table."""


@dataclass(frozen=True)
class Route:
    """One HTTP binding of one gRPC method."""

    http_method: str
    template: PathTemplate
    grpc_method: str
    """Full gRPC method path, `/pkg.Service/Method`."""
    method: MethodDescriptor
    request_class: type[message_lib.Message]
    response_class: type[message_lib.Message]
    body: str
    """`*`, a top-level request field name, or empty."""
    response_body: str
    """A top-level response field name, or empty for the whole message."""
    server_streaming: bool

    @property
    def operation_id(self) -> str:
        return f"{self.method.containing_service.name}_{self.method.name}"

    def __str__(self) -> str:
        return f"{self.http_method} {self.template} ({self.grpc_method})"


@dataclass(frozen=True)
class RouteMatch:
    """A route that matched a request, with its decoded path variables (field path → text)."""

    route: Route
    path_params: dict[str, str]


class RouteTable:
    """All routes of some services, tried in precedence order (see `PathTemplate.precedence`)."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = tuple(routes)
        seen: dict[tuple[object, ...], Route] = {}
        for route in self._routes:
            key = (route.http_method, route.template.shape)
            if key in seen:
                raise RouteError(f"{route} conflicts with {seen[key]}")
            seen[key] = route
        self._ordered = sorted(self._routes, key=lambda route: route.template.precedence)

    @classmethod
    def from_services(cls, services: Iterable[ServiceDescriptor]) -> RouteTable:
        """Build the table; methods without a google.api.http option are skipped."""
        return cls(route for service in services for method in service.methods for route in _method_routes(method))

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route, in declaration order."""
        return self._routes

    def match(self, http_method: str, raw_path: str) -> RouteMatch | None:
        """Find the route for a request; raises `PathDecodeError` on a badly encoded path variable."""
        method = http_method.upper()
        for route in self._ordered:
            if route.http_method != method:
                continue
            params = route.template.match(raw_path)
            if params is not None:
                return RouteMatch(route, params)
        return None


def _method_routes(method: MethodDescriptor) -> list[Route]:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return []
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    where = f"/{method.containing_service.full_name}/{method.name}"
    if method.client_streaming:
        raise RouteError(f"{where}: client-streaming methods cannot be transcoded")
    routes = [_route(method, rule, where)]
    for binding in rule.additional_bindings:
        if binding.additional_bindings:
            raise RouteError(f"{where}: additional_bindings must not nest")
        routes.append(_route(method, binding, where))
    return routes


def _route(method: MethodDescriptor, rule: http_pb2.HttpRule, where: str) -> Route:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        raise RouteError(f"{where}: HttpRule has no pattern")
    if kind == "custom":
        http_method, path = rule.custom.kind.upper(), rule.custom.path
    else:
        http_method, path = kind.upper(), getattr(rule, kind)
    if not http_method:
        raise RouteError(f"{where}: custom HttpRule has no kind")
    try:
        template = PathTemplate.parse(path)
    except TemplateError as exc:
        raise RouteError(f"{where}: {exc}") from exc
    request, response = method.input_type, method.output_type
    for variable in template.variables:
        _check_path_field(request, variable.field_path, f"{where} {path}")
    if rule.body and http_method in _BODYLESS_METHODS:
        raise RouteError(f"{where}: {http_method} {path} must not have a body")
    if rule.body and rule.body != "*":
        _top_level_field(request, rule.body, f"{where}: body")
    if rule.response_body:
        _top_level_field(response, rule.response_body, f"{where}: response_body")
    return Route(
        http_method=http_method,
        template=template,
        grpc_method=where,
        method=method,
        request_class=message_factory.GetMessageClass(request),
        response_class=message_factory.GetMessageClass(response),
        body=rule.body,
        response_body=rule.response_body,
        server_streaming=method.server_streaming,
    )


def _check_path_field(message: Descriptor, field_path: str, where: str) -> None:
    *parents, leaf = field_path.split(".")
    for name in parents:
        field = message.fields_by_name.get(name)
        if field is None or field.message_type is None or field.is_repeated:
            raise RouteError(f"{where}: {field_path!r} is not a path of singular message fields")
        message = field.message_type
    field = message.fields_by_name.get(leaf)
    if field is None:
        raise RouteError(f"{where}: {message.full_name} has no field {leaf!r} ({field_path!r})")
    if field.is_repeated or field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        raise RouteError(f"{where}: path variable {field_path!r} must be a singular scalar field")


def _top_level_field(message: Descriptor, name: str, where: str) -> FieldDescriptor:
    field = message.fields_by_name.get(name)
    if field is None:
        raise RouteError(f"{where}: {message.full_name} has no top-level field {name!r}")
    return field
