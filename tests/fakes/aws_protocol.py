"""AWS's wire protocols for the stand-ins, routed by botocore's own service models.

A stand-in names the botocore services it serves (`Router(Service("athena", legacy_target_prefix=...), ...)`).
Each service's model says which protocols AWS answers it in (`metadata['protocols']`, else `['protocol']`),
and each operation's `http.method` and `http.requestUri` and its input members' `location`: the router turns
an HTTP request into a `Call` (service, operation, params, protocol) and a handler's output dict, or an
`AwsError`, into the HTTP answer in the protocol the request came in. Which protocol a service speaks is
so the model's business: when botocore moves a service to another protocol, the stand-ins follow it.

The protocols, as AWS documents them (smithy.io/2.0/aws/protocols):

- awsJson1_0 / awsJson1_1 (`json`): `POST /`, `X-Amz-Target: <targetPrefix>.<Operation>`, the body is the
  params as JSON; errors `{"__type": code, "message": ...}` under `application/x-amz-json-1.x`. Always
  accepted as well, under the model's `targetPrefix` or, for a service whose model has lost it, the
  legacy prefix the stand-in names (Athena's `AmazonAthena`): older clients still speak it.
- restJson1 (`rest-json`): the operation is found by method and path (labels `{Name}`, greedy `{Name+}`,
  literal query keys); members come from the path, the query string, headers or the JSON body (or the
  `payload` member); errors carry `x-amzn-ErrorType` and a JSON body with `message`.
- awsQuery (`query`): form-encoded `Action=<Operation>&Version=...` with `Member.member.N`-style names;
  answers `<OpResponse><OpResult>...</OpResult><ResponseMetadata>`, errors an XML `ErrorResponse`.
- Smithy RPC v2 CBOR (`smithy-rpc-v2-cbor`): `POST /service/<name>/operation/<Operation>` with
  `smithy-protocol: rpc-v2-cbor`, the params a CBOR map; errors a CBOR map with `__type`.

A model naming any other protocol makes `Service` refuse to be built (`UnsupportedProtocol`): a stand-in
that cannot speak its service's protocol must not start, never answer in the wrong one.

Handlers see one form of params whatever the protocol: member names (not wire names), timestamps as
epoch seconds (float), integers as int, booleans as bool, blobs as bytes. A text value that does not
convert to its member's type is left as text, for the handler's own checks to refuse as AWS does.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

import botocore.session
import cbor2
from botocore.model import OperationModel, ServiceModel, Shape

JSON, REST_JSON, QUERY, CBOR = "json", "rest-json", "query", "smithy-rpc-v2-cbor"
SPOKEN = frozenset({JSON, REST_JSON, QUERY, CBOR})
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/(?P<service>[^/]+)/aws4_request")
_RPC_V2_PATH = re.compile(r"/service/(?P<service>[^/]+)/operation/(?P<operation>[^/?]+)$")
_request_ids = itertools.count(1)


class AwsError(Exception):
    """An answer AWS gives as an error: its code, message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class UnsupportedProtocol(RuntimeError):
    """A model names a protocol the router cannot speak: the stand-in must not start."""


@dataclass(frozen=True)
class HttpRequest:
    method: str
    target: str  # the path with its query string, as sent
    headers: Mapping[str, str]  # case-insensitive (http.server's headers are)
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def signed_for(self) -> str | None:
        """The service of the SigV4 credential scope in the Authorization header, if any."""
        found = _CREDENTIAL_SCOPE.search(self.headers.get("Authorization", ""))
        return found["service"] if found else None


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Call:
    """One request as the stand-in sees it. `service` is botocore's name (None: no served service);
    `refusal` is set when the request could not be routed or read, and must be answered with it."""

    service: str | None
    operation: str | None
    params: dict
    protocol: str
    json_version: str = "1.1"  # awsJson's answers: the version asked in, else the model's
    refusal: AwsError | None = None


# ── one service ──────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    pattern: re.Pattern
    labels: dict[str, str]  # regex group → member name
    literal_query: dict[str, str | None]  # key → value, or None for a bare key
    literal_path: int  # characters of the path that are not labels

    @property
    def specificity(self) -> tuple[int, int]:
        """More literal query keys, then a longer literal path, win: `/things/{Id}/stop` before `/things/{Id+}`."""
        return len(self.literal_query), self.literal_path

    def match(self, request: HttpRequest) -> dict[str, str] | None:
        if request.method != self.method:
            return None
        found = self.pattern.fullmatch(request.path)
        if found is None:
            return None
        query = request.query
        for key, value in self.literal_query.items():
            if key not in query or (value is not None and value not in query[key]):
                return None
        return {self.labels[group]: unquote(text) for group, text in found.groupdict().items()}


class Service:
    """The protocols of one botocore service, read from its model."""

    def __init__(self, name: str, legacy_target_prefix: str | None = None, model: ServiceModel | None = None):
        self.name = name
        self.model = model or botocore.session.get_session().get_service_model(name)
        metadata = self.model.metadata
        self.protocols = tuple(metadata.get("protocols") or [metadata["protocol"]])
        unknown = sorted(set(self.protocols) - SPOKEN)
        if unknown:
            raise UnsupportedProtocol(f"the {name} model (botocore) names protocol(s) {unknown}, which the "
                                      f"stand-in cannot speak (it speaks {sorted(SPOKEN)}): refusing to start")
        self.target_prefix = metadata.get("targetPrefix") or legacy_target_prefix
        if self.target_prefix is None and CBOR in self.protocols:
            raise UnsupportedProtocol(f"the {name} model speaks {CBOR} but names no targetPrefix")
        self.json_version = metadata.get("jsonVersion") or "1.1"
        self.signing_name = metadata.get("signingName") or metadata["endpointPrefix"]
        self.xml_namespace = metadata.get("xmlNamespace", "")
        self.routes = _routes(self.model) if REST_JSON in self.protocols else []

    def speaks(self, protocol: str) -> bool:
        """Every protocol the model names, and awsJson1.1 always (with a target prefix to route it by)."""
        return protocol in self.protocols or (protocol == JSON and self.target_prefix is not None)

    def operation(self, name: str) -> OperationModel | None:
        return self.model.operation_model(name) if name in self.model.operation_names else None


def _routes(model: ServiceModel) -> list[_Route]:
    """Every operation's route, the most specific first, as the first that matches is taken."""
    routes = [_route(model.operation_model(name)) for name in model.operation_names]
    return sorted(routes, key=lambda route: route.specificity, reverse=True)


def _route(operation: OperationModel) -> _Route:
    """The requestUri as a pattern: `{Name}` one path segment, `{Name+}` the rest of the path (greedy)."""
    uri = operation.http.get("requestUri", "/")
    path, _, literal = uri.partition("?")
    members = operation.input_shape.members if operation.input_shape else {}
    by_label = {member.serialization.get("name", name): name for name, member in members.items()
                if member.serialization.get("location") == "uri"}
    labels, pattern, position, literal_path = {}, "", 0, 0
    for number, found in enumerate(re.finditer(r"\{([^}+]+)(\+?)\}", path)):
        group = f"label{number}"
        labels[group] = by_label.get(found[1], found[1])
        pattern += re.escape(path[position:found.start()]) + (f"(?P<{group}>.+)" if found[2] else f"(?P<{group}>[^/]+)")
        literal_path += found.start() - position
        position = found.end()
    pattern += re.escape(path[position:])
    literal_path += len(path) - position
    literal_query = {key: (value or None) for key, _, value in
                     (part.partition("=") for part in literal.split("&") if part)}
    return _Route(operation.name, operation.http.get("method", "POST"), re.compile(pattern), labels, literal_query,
                  literal_path)


# ── the router ───────────────────────────────────────────────────────────────────────────────────────


class Router:
    """Requests to calls and outputs to answers, for the services one stand-in serves."""

    def __init__(self, *services: Service):
        self.services = {service.name: service for service in services}

    def service(self, name: str) -> Service:
        return self.services[name]

    # requests

    def route(self, request: HttpRequest) -> Call:
        protocol = _protocol_of(request)
        call = Call(None, None, {}, protocol)
        try:
            read = {JSON: self._read_json, CBOR: self._read_cbor, QUERY: self._read_query,
                    REST_JSON: self._read_rest}[protocol]
            read(request, call)
        except AwsError as refusal:
            call.refusal = refusal
        return call

    def _candidates(self, protocol: str, request: HttpRequest) -> list[Service]:
        """The services that speak `protocol`, the one the request was signed for first (Athena and
        CloudTrail Lake both have a GetQueryResults: the signature's scope tells them apart)."""
        speaking = [service for service in self.services.values() if service.speaks(protocol)]
        return sorted(speaking, key=lambda service: service.signing_name != request.signed_for)

    def _by_prefix(self, protocol: str, prefix: str) -> Service | None:
        return next((service for service in self.services.values()
                     if service.speaks(protocol) and service.target_prefix == prefix), None)

    def _read_json(self, request: HttpRequest, call: Call) -> None:
        prefix, _, operation = request.headers.get("X-Amz-Target", "").rpartition(".")
        service = self._by_prefix(JSON, prefix)
        if service is None:
            raise AwsError("UnknownOperationException", f"no service here answers {prefix!r}")
        call.service, call.json_version = service.name, _json_version(request) or service.json_version
        model = _known_operation(service, operation, call)
        call.params = _normalised(_json_body(request.body), model.input_shape)

    def _read_cbor(self, request: HttpRequest, call: Call) -> None:
        found = _RPC_V2_PATH.fullmatch(request.path)
        service = self._by_prefix(CBOR, found["service"]) if found and request.method == "POST" else None
        if service is None:
            raise AwsError("UnknownOperationException", f"no service here answers {request.path}", 404)
        call.service = service.name
        model = _known_operation(service, found["operation"], call)
        try:
            decoded = cbor2.loads(request.body) if request.body else {}
        except (cbor2.CBORDecodeError, ValueError) as exc:
            raise AwsError("SerializationException", f"the body is not CBOR: {exc}") from None
        call.params = _normalised(decoded, model.input_shape)

    def _read_query(self, request: HttpRequest, call: Call) -> None:
        source = request.body.decode("utf-8", "replace") if request.method == "POST" else urlsplit(request.target).query
        form = parse_qs(source, keep_blank_values=True)
        action = (form.get("Action") or [""])[0]
        for service in self._candidates(QUERY, request):
            call.service = service.name
            if service.operation(action) is not None:
                call.operation = action
                call.params = _from_form(form, service.operation(action).input_shape, "") or {}
                return
        raise AwsError("InvalidAction", f"The action {action or '(none)'} is not valid for this web service.")

    def _read_rest(self, request: HttpRequest, call: Call) -> None:
        for service in self._candidates(REST_JSON, request):
            for route in service.routes:
                labels = route.match(request)
                if labels is not None:
                    call.service, call.operation = service.name, route.operation
                    call.params = _rest_params(service.operation(route.operation), request, labels)
                    return
        raise AwsError("UnknownOperationException", f"no operation here answers {request.method} {request.path}",
                       404)

    # answers

    def answer(self, call: Call, output: dict | None) -> HttpAnswer:
        """A handler's output, in the protocol of the call."""
        operation = self.services[call.service].operation(call.operation)
        shape = operation.output_shape
        output = output or {}
        if call.protocol == QUERY:
            return self._query_answer(call, operation, output)
        if call.protocol == CBOR:
            return HttpAnswer(200, {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"},
                              cbor2.dumps(_wire(output, shape, CBOR) if shape else {}))
        if call.protocol == REST_JSON:
            return _rest_answer(operation, output)
        body = json.dumps(_wire(output, shape, JSON) if shape else {}).encode()
        return HttpAnswer(200, {"Content-Type": f"application/x-amz-json-{call.json_version}"}, body)

    def _query_answer(self, call: Call, operation: OperationModel, output: dict) -> HttpAnswer:
        shape = operation.output_shape
        wrapper = (shape.serialization.get("resultWrapper") if shape else None) or f"{call.operation}Result"
        inner = _xml_members(output, shape) if shape else ""
        namespace = self.services[call.service].xml_namespace
        body = (f'<{call.operation}Response xmlns="{namespace}"><{wrapper}>{inner}</{wrapper}>'
                f"<ResponseMetadata><RequestId>{next(_request_ids)}</RequestId></ResponseMetadata>"
                f"</{call.operation}Response>")
        return HttpAnswer(200, {"Content-Type": "text/xml"}, body.encode())

    def error(self, call: Call, error: AwsError) -> HttpAnswer:
        """An error, in the protocol of the call (what the request looked like, when it was not routed)."""
        document = {"__type": error.code, "message": error.message}
        if call.protocol == QUERY:
            namespace = self.services[call.service].xml_namespace if call.service else ""
            kind = "Receiver" if error.status >= 500 else "Sender"
            body = (f'<ErrorResponse xmlns="{namespace}"><Error><Type>{kind}</Type><Code>{escape(error.code)}</Code>'
                    f"<Message>{escape(error.message)}</Message></Error>"
                    f"<RequestId>{next(_request_ids)}</RequestId></ErrorResponse>")
            return HttpAnswer(error.status, {"Content-Type": "text/xml"}, body.encode())
        if call.protocol == CBOR:
            return HttpAnswer(error.status, {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"},
                              cbor2.dumps(document))
        if call.protocol == REST_JSON:
            return HttpAnswer(error.status, {"Content-Type": "application/json", "x-amzn-ErrorType": error.code},
                              json.dumps(document).encode())
        return HttpAnswer(error.status, {"Content-Type": f"application/x-amz-json-{call.json_version}"},
                          json.dumps(document).encode())


def _protocol_of(request: HttpRequest) -> str:
    """What the request speaks, from what each protocol puts on the wire."""
    if request.headers.get("X-Amz-Target"):
        return JSON
    if request.headers.get("smithy-protocol", "").lower() == "rpc-v2-cbor":
        return CBOR
    content_type = request.headers.get("Content-Type", "").lower()
    if content_type.startswith("application/x-www-form-urlencoded") or "Action" in request.query:
        return QUERY
    return REST_JSON


def _json_version(request: HttpRequest) -> str | None:
    """awsJson answers in the version it was asked in (1.0 or 1.1); None: the request did not say."""
    found = re.search(r"application/x-amz-json-(1\.[01])", request.headers.get("Content-Type", ""))
    return found[1] if found else None


def _known_operation(service: Service, name: str, call: Call) -> OperationModel:
    model = service.operation(name)
    if model is None:
        raise AwsError("UnknownOperationException", f"{service.name} has no operation {name!r}")
    call.operation = name
    return model


def _json_body(body: bytes) -> dict:
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        raise AwsError("SerializationException", "the body is not JSON") from None
    if not isinstance(document, dict):
        raise AwsError("SerializationException", "the body is not a JSON object")
    return document


def _rest_params(operation: OperationModel, request: HttpRequest, labels: dict[str, str]) -> dict:
    """restJson1's members from where the model puts them: path labels, query string, headers, body."""
    shape = operation.input_shape
    if shape is None:
        return {}
    params: dict = {}
    query = request.query
    named = {member.serialization.get("name", name) for name, member in shape.members.items()
             if member.serialization.get("location") == "querystring" and member.type_name != "map"}
    for name, member in shape.members.items():
        location, wire = member.serialization.get("location"), member.serialization.get("name", name)
        if location == "uri" and name in labels:
            params[name] = labels[name]
        elif location == "querystring":
            taken = _from_query(query, member, wire, named)
            if taken is not None:
                params[name] = taken
        elif location == "header" and wire in request.headers:
            params[name] = request.headers[wire]
        elif location == "headers":
            found = {key[len(wire):]: value for key, value in request.headers.items()
                     if key.lower().startswith(wire.lower())}
            if found:
                params[name] = found
    payload = shape.serialization.get("payload")
    if payload is not None:
        if request.body:
            member = shape.members[payload]
            params[payload] = _json_body(request.body) if member.type_name == "structure" else request.body
    elif request.body:
        params.update(_json_body(request.body))  # wire names: `_normalised` maps them to member names
    return _normalised(params, shape)


def _from_query(query: dict[str, list[str]], member: Shape, wire: str, named: set[str]):
    if member.type_name == "list":
        return query.get(wire)
    if member.type_name == "map":  # every query key no other member takes (Smithy's @httpQueryParams)
        return {key: values if member.value.type_name == "list" else values[0] for key, values in query.items()
                if key not in named} or None
    return query[wire][0] if wire in query else None


def _from_form(form: dict[str, list[str]], shape: Shape | None, prefix: str):
    """awsQuery's flattened names back into params: `A.B`, `A.member.N`, `A.entry.N.key`/`.value`."""
    if shape is None:
        return None
    join = (lambda name: f"{prefix}.{name}") if prefix else (lambda name: name)
    if shape.type_name == "structure":
        found = {}
        for name, member in shape.members.items():
            value = _from_form(form, member, join(member.serialization.get("name", name)))
            if value is not None:
                found[name] = value
        return found if found or not prefix else None
    if shape.type_name == "list":
        if form.get(prefix) == [""]:
            return []
        items = prefix if shape.serialization.get("flattened") else join(shape.member.serialization.get("name",
                                                                                                        "member"))
        return _numbered(form, items, lambda item: _from_form(form, shape.member, item))
    if shape.type_name == "map":
        entries = prefix if shape.serialization.get("flattened") else join("entry")
        key_name, value_name = (shape.key.serialization.get("name", "key"),
                                shape.value.serialization.get("name", "value"))
        pairs = _numbered(form, entries, lambda entry: (_from_form(form, shape.key, f"{entry}.{key_name}"),
                                                        _from_form(form, shape.value, f"{entry}.{value_name}")))
        return dict(pairs) if pairs is not None else None
    return _normalised(form[prefix][0], shape) if prefix in form else None


def _numbered(form: dict[str, list[str]], prefix: str, read: Callable[[str], object]) -> list | None:
    """Items `prefix.1`, `prefix.2`, … while they are there (awsQuery counts from 1)."""
    found = []
    for number in itertools.count(1):
        item = f"{prefix}.{number}"
        if not any(key == item or key.startswith(item + ".") for key in form):
            break
        found.append(read(item))
    return found or None


# ── values: one form for the handlers, each protocol's on the wire ────────────────────────────────────


def _member_shapes(shape: Shape) -> dict[str, tuple[str, Shape]]:
    """A structure's members by the names they take on the wire."""
    return {member.serialization.get("name", name): (name, member) for name, member in shape.members.items()}


def _normalised(value, shape: Shape | None):
    """The handlers' form of a value of `shape`, from whichever protocol carried it."""
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = _member_shapes(shape)
        out = {}
        for key, item in value.items():
            name, member = members.get(key, (key, None))
            if member is None and key in shape.members:
                name, member = key, shape.members[key]
            out[name] = _normalised(item, member)
        return out
    if kind == "list" and isinstance(value, list):
        return [_normalised(item, shape.member) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {key: _normalised(item, shape.value) for key, item in value.items()}
    return _scalar(value, kind)


def _scalar(value, kind: str):
    try:
        if kind == "timestamp":
            return _epoch(value)
        if kind in ("integer", "long") and isinstance(value, str):
            return int(value)
        if kind in ("float", "double") and isinstance(value, (str, int)) and not isinstance(value, bool):
            return float(value)
        if kind == "boolean" and isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        if kind == "blob" and isinstance(value, str):
            return base64.b64decode(value, validate=True)
    except ValueError:
        pass  # left as sent: the handler refuses it as AWS would
    return value


def _epoch(value) -> float:
    """A timestamp in any of AWS's forms (epoch seconds, ISO 8601, HTTP date, a datetime) as epoch seconds."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return _epoch(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return _epoch(parsedate_to_datetime(value))


def _wire(value, shape: Shape, protocol: str):
    """A handler's output value as `protocol` carries it in JSON or CBOR (None members left out)."""
    kind = shape.type_name
    if kind == "structure":
        return {member.serialization.get("name", name): _wire(value[name], member, protocol)
                for name, member in shape.members.items() if value.get(name) is not None}
    if kind == "list":
        return [_wire(item, shape.member, protocol) for item in value]
    if kind == "map":
        return {key: _wire(item, shape.value, protocol) for key, item in value.items()}
    if kind == "timestamp":
        return _wire_timestamp(value, shape, protocol)
    if kind == "blob":
        return value if protocol == CBOR else base64.b64encode(value).decode()
    return value


def _wire_timestamp(value, shape: Shape, protocol: str):
    seconds = _epoch(value)
    if protocol == CBOR:
        return cbor2.CBORTag(1, seconds)
    moment = datetime.fromtimestamp(seconds, UTC)
    form = shape.serialization.get("timestampFormat", "unixTimestamp" if protocol != QUERY else "iso8601")
    if form.lower() == "iso8601":
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if form.lower() == "rfc822":
        return format_datetime(moment, usegmt=True)
    return seconds


def _rest_answer(operation: OperationModel, output: dict) -> HttpAnswer:
    """restJson1's answer: members bound to headers or the status code there, the rest (or the payload
    member) as the JSON body; the status is the operation's `responseCode` unless a member sets it."""
    shape = operation.output_shape
    status, headers = operation.http.get("responseCode", 200), {"Content-Type": "application/json"}
    if shape is None:
        return HttpAnswer(status, headers, b"{}")
    body_members = {}
    for name, member in shape.members.items():
        location, wire, value = member.serialization.get("location"), member.serialization.get("name", name), \
            output.get(name)
        if value is None:
            continue
        if location == "header":
            headers[wire] = str(_wire(value, member, REST_JSON))
        elif location == "headers":
            headers.update({wire + key: str(item) for key, item in value.items()})
        elif location == "statusCode":
            status = int(value)
        else:
            body_members[name] = value
    payload = shape.serialization.get("payload")
    if payload is not None:
        member, value = shape.members[payload], output.get(payload)
        if member.type_name != "structure":
            return HttpAnswer(status, headers, value or b"")
        return HttpAnswer(status, headers, json.dumps(_wire(value or {}, member, REST_JSON)).encode())
    return HttpAnswer(status, headers, json.dumps(_wire(body_members, shape, REST_JSON)).encode())


def _xml_members(value: dict, shape: Shape) -> str:
    return "".join(_xml_element(member.serialization.get("name", name), value[name], member)
                   for name, member in shape.members.items() if value.get(name) is not None)


def _xml_element(name: str, value, shape: Shape) -> str:
    """awsQuery's XML for one member: lists of `<member>` (unless flattened), maps of `<entry>`."""
    kind = shape.type_name
    if kind == "structure":
        return f"<{name}>{_xml_members(value, shape)}</{name}>"
    if kind == "list":
        item = shape.member.serialization.get("name", "member")
        items = "".join(_xml_element(name if shape.serialization.get("flattened") else item, v, shape.member)
                        for v in value)
        return items if shape.serialization.get("flattened") else f"<{name}>{items}</{name}>"
    if kind == "map":
        entries = "".join(f"<entry>{_xml_element('key', key, shape.key)}{_xml_element('value', item, shape.value)}"
                          "</entry>" for key, item in value.items())
        return f"<{name}>{entries}</{name}>"
    if kind == "timestamp":
        text = _wire_timestamp(value, shape, QUERY)
    elif kind == "boolean":
        text = "true" if value else "false"
    elif kind == "blob":
        text = base64.b64encode(value).decode()
    else:
        text = str(value)
    return f"<{name}>{escape(str(text))}</{name}>"


# ── serving ──────────────────────────────────────────────────────────────────────────────────────────


@dataclass
class Server:
    """A threaded HTTP server handing every request to `handle`."""

    handle: Callable[[HttpRequest], HttpAnswer]
    _server: ThreadingHTTPServer | None = field(default=None, init=False)

    def start(self) -> str:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self.handle))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _handler_class(handle: Callable[[HttpRequest], HttpAnswer]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes on a kept-alive connection: with Nagle's algorithm the body
        # waits for the client's delayed ACK of the headers (40 ms a request on Linux), which no real API adds.
        disable_nagle_algorithm = True

        def _serve(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = handle(HttpRequest(self.command, self.path, self.headers, body))
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            try:
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client is gone (a test killed it)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # the http.server API: one method each

        def log_message(self, *args):
            pass

    return Handler
