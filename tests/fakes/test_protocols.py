"""Every AWS operation sesguard calls is answered by the stand-ins in each protocol the installed botocore model
names for its service, and in awsJson1.1: the protocols are read from the model at collection time, so that when
botocore moves a service (as 1.44 moved Athena to restJson1) the new protocol is tested without a change here.

A client is made to speak a chosen protocol by a data loader that hands botocore the service's own model with
`metadata.protocol`/`protocols` replaced (and the stand-in's target prefix for awsJson and RPC v2 CBOR). sesguard's
own code runs on such clients: the engines' rule scans, the LookupEvents source with its STS calls. What crossed
the wire is asserted through the stand-ins' records, which name the protocol each request came in."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import boto3
import botocore.session
import pytest
from botocore.awsrequest import HeadersDict, create_request_object, prepare_request_dict
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import ServiceModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from detection.sources.lookup import Backoff, LookupSource, lookup_pacer
from detection.sources.pulled import AccountRegion
from detection.sources.sql import athena, engine, lake, query
from detection.sources.sql.running import GB, Limits
from tests.fakes.aws_protocol import (
    CBOR,
    JSON,
    QUERY,
    REST_JSON,
    SPOKEN,
    AwsError,
    HttpAnswer,
    HttpRequest,
    Router,
    Service,
    UnsupportedProtocol,
)
from tests.fakes.cloudtrail_api import STS_TARGET_PREFIX
from tests.fakes.sql_engines import ATHENA_LEGACY_TARGET_PREFIX, Outcome, SqlEngines
from tests.support import sql_trails as trails
from tests.support.local_aws import OWN_ACCOUNT, ROLE_ACCOUNT, ROLE_ARN, now, ses_calls, user

SINCE, UNTIL = trails.T0, trails.T0 + timedelta(days=30)
OUTPUT = "s3://athena-results-111122223333/sesguard/"
NO_RETRIES = Config(retries={"total_max_attempts": 1})
# The awsJson / RPC v2 CBOR prefix of each service, as the stand-ins route them.
TARGET_PREFIXES = {
    "athena": ATHENA_LEGACY_TARGET_PREFIX,
    "cloudtrail": botocore.session.get_session().get_service_model("cloudtrail").metadata["targetPrefix"],
    "sts": STS_TARGET_PREFIX,
}


def protocols_of(service: str) -> list[str]:
    """The protocols the installed model names for `service`, and awsJson1.1 (which the stand-ins always speak)."""
    metadata = botocore.session.get_session().get_service_model(service).metadata
    return sorted(set(metadata.get("protocols") or [metadata["protocol"]]) | {JSON})


def forced_metadata(service: str, protocol: str) -> dict:
    metadata = {"protocol": protocol, "protocols": [protocol]}
    if protocol in (JSON, CBOR):
        metadata["targetPrefix"] = TARGET_PREFIXES[service]
    if protocol == JSON:
        metadata["jsonVersion"] = "1.1"
    return metadata


class ModelForcingLoader:
    """botocore's data loader, but the service models named come back speaking the protocol chosen for them."""

    def __init__(self, loader, protocols: dict[str, str]):
        self._loader, self._protocols = loader, protocols

    def load_service_model(self, service_name, type_name, api_version=None):
        model = self._loader.load_service_model(service_name, type_name, api_version)
        if type_name != "service-2" or service_name not in self._protocols:
            return model
        model = copy.deepcopy(model)
        model["metadata"].update(forced_metadata(service_name, self._protocols[service_name]))
        return model

    def __getattr__(self, name):
        return getattr(self._loader, name)


def forced_botocore(**protocols: str) -> botocore.session.Session:
    """A botocore session whose clients of each named service speak the given protocol (environment as usual)."""
    session = botocore.session.Session()
    session.register_component("data_loader", ModelForcingLoader(session.get_component("data_loader"), protocols))
    return session


def speaking(**protocols: str) -> boto3.Session:
    return boto3.Session(botocore_session=forced_botocore(**protocols))


# ── fixtures ─────────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def engines(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    stand_in = SqlEngines()
    endpoint = stand_in.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_ATHENA", endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", endpoint)
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="module")
def trail():
    return trails.generated_trail(11, 800, days=30)


def _settings(**limits) -> engine.EngineSettings:
    return engine.EngineSettings("primary", OUTPUT, Limits(first_wait=0.001, longest_wait=0.001, **limits))


def _wire(engines: SqlEngines) -> set[tuple[str, str]]:
    """(service, protocol) of every request the engines received."""
    return {(call.service, call.protocol) for call in engines.requests}


# ── Athena ───────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("protocol", protocols_of("athena"))
def test_an_athena_scan_gives_the_files_calls_in_every_protocol(engines, trail, monkeypatch, protocol):
    monkeypatch.setattr(athena, "athena_client", lambda: speaking(athena=protocol).client("athena"))
    records, late = trail
    engines.load_athena(trails.TABLE, records, late)
    engines.script.append(Outcome(running_looks=2))
    scanned = engine.rule_scan(engine.parse(f"athena://{trails.TABLE}"), SINCE, UNTIL, _settings(page_size=100))
    assert scanned.error is None
    assert set(scanned.calls) == trails.python_rule(records, SINCE, UNTIL)[0]
    assert _wire(engines) == {("athena", protocol)}
    started, = engines.bodies("StartQueryExecution")
    expected = query.athena_rule_query(trails.TABLE, SINCE, UNTIL)
    assert started["QueryString"] == expected.text and started["ExecutionParameters"] == expected.parameters
    assert len(engines.bodies("GetQueryExecution")) == 4  # QUEUED, RUNNING twice, SUCCEEDED
    pages = engines.bodies("GetQueryResults")
    assert len(pages) == scanned.figures.pages > 1
    assert all(page["MaxResults"] == 100 and page["QueryExecutionId"] == scanned.figures.query_id for page in pages)
    assert "NextToken" not in pages[0] and all(page["NextToken"] for page in pages[1:])


@pytest.mark.parametrize("protocol", protocols_of("athena"))
def test_athena_stops_a_query_past_its_limit_in_every_protocol(engines, trail, monkeypatch, protocol):
    monkeypatch.setattr(athena, "athena_client", lambda: speaking(athena=protocol).client("athena"))
    engines.load_athena(trails.TABLE, trail[0])
    engines.script.append(Outcome(running_looks=4, bytes_scanned=int(80 * GB)))
    scanned = engine.rule_scan(engine.parse(f"athena://{trails.TABLE}"), SINCE, UNTIL, _settings(max_gb=50))
    assert "more than SESGUARD_SQL_MAX_GB=50" in scanned.error
    query_id = scanned.figures.query_id
    assert engines.bodies("StopQueryExecution") == [{"QueryExecutionId": query_id}]
    assert engines.executions[query_id].state == "CANCELLED" and _wire(engines) == {("athena", protocol)}


# ── CloudTrail Lake ──────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("protocol", protocols_of("cloudtrail"))
def test_a_lake_scan_gives_the_files_calls_in_every_protocol(engines, trail, monkeypatch, protocol):
    monkeypatch.setattr(lake, "lake_client", lambda: speaking(cloudtrail=protocol).client("cloudtrail"))
    records, _ = trail
    engines.load_lake(trails.STORE, records)
    scanned = engine.rule_scan(engine.parse(f"lake://{trails.STORE}"), SINCE, UNTIL, _settings(page_size=100))
    assert scanned.error is None
    assert set(scanned.calls) == trails.python_rule(records, SINCE, UNTIL)[0]
    assert _wire(engines) == {("cloudtrail", protocol)}
    assert engines.bodies("StartQuery") == [{"QueryStatement": query.lake_rule_query(trails.STORE, SINCE, UNTIL).text}]
    pages = engines.bodies("GetQueryResults", service="cloudtrail")
    assert len(pages) == scanned.figures.pages > 1 and all(page["MaxQueryResults"] == 100 for page in pages)
    assert engines.bodies("GetQueryResults", service="athena") == []


@pytest.mark.parametrize("protocol", protocols_of("cloudtrail"))
def test_lake_cancels_a_query_past_its_limit_in_every_protocol(engines, trail, monkeypatch, protocol):
    monkeypatch.setattr(lake, "lake_client", lambda: speaking(cloudtrail=protocol).client("cloudtrail"))
    engines.load_lake(trails.STORE, trail[0])
    engines.script.append(Outcome(running_looks=3, bytes_scanned=int(2 * GB)))
    scanned = engine.rule_scan(engine.parse(f"lake://{trails.STORE}"), SINCE, UNTIL, _settings(max_gb=0.5))
    assert "more than SESGUARD_SQL_MAX_GB=0.5" in scanned.error
    assert engines.bodies("CancelQuery") == [{"QueryId": scanned.figures.query_id}]
    assert _wire(engines) == {("cloudtrail", protocol)}


NO_SUCH_QUERY = "00000000-0000-4000-8000-000000000000"
# A call each engine refuses, and the code it refuses it with.
ENGINE_ERRORS = {
    "athena": (lambda client: client.get_query_execution(QueryExecutionId=NO_SUCH_QUERY), "InvalidRequestException"),
    "cloudtrail": (lambda client: client.describe_query(QueryId=NO_SUCH_QUERY), "QueryIdNotFoundException"),
}


@pytest.mark.parametrize("service, protocol", [(service, protocol) for service in ENGINE_ERRORS
                                               for protocol in protocols_of(service)])
def test_an_engine_error_reaches_the_client_as_its_code_in_every_protocol(engines, service, protocol):
    call, code = ENGINE_ERRORS[service]
    client = speaking(**{service: protocol}).client(service, config=NO_RETRIES)
    with pytest.raises(ClientError) as caught:
        call(client)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _wire(engines) == {(service, protocol)}


# ── LookupEvents and STS ─────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("sts_protocol", protocols_of("sts"))
@pytest.mark.parametrize("cloudtrail_protocol", protocols_of("cloudtrail"))
def test_the_lookup_source_reads_pages_through_a_role_in_every_protocol(aws, sqlite_store,
                                                                        cloudtrail_protocol, sts_protocol):
    """sesguard's own path: GetCallerIdentity for its account, AssumeRole for the role's, LookupEvents paged."""
    aws.api.limit = 20  # the pace is not the subject here
    aws.api.add_role(ROLE_ARN)
    own = ses_calls(user("alice"), 60, minutes_ago=5)  # two pages of 50
    theirs = ses_calls(user("bob", ROLE_ACCOUNT), 3, account=ROLE_ACCOUNT)
    aws.api.add_events(*own, *theirs)
    src = LookupSource(["us-east-1"], [ROLE_ARN], sqlite_store, backoff=Backoff(base=0.01, cap=0.05),
                       pacer=lookup_pacer(sqlite_store, limit=20),
                       session=forced_botocore(cloudtrail=cloudtrail_protocol, sts=sts_protocol))
    places = src.places()
    end = now()
    pulled = {place: src.pull(place, end - timedelta(hours=1), end, lambda: None) for place in places}

    assert {call.event_id for call in pulled[AccountRegion(OWN_ACCOUNT, "us-east-1")].calls} == \
        {r["eventID"] for r in own}
    assert {call.event_id for call in pulled[AccountRegion(ROLE_ACCOUNT, "us-east-1")].calls} == \
        {r["eventID"] for r in theirs}
    own_lookups = [r for r in aws.api.lookups(account=OWN_ACCOUNT) if r.event_source == "ses.amazonaws.com"]
    assert [bool(r.params.get("NextToken")) for r in own_lookups] == [False, True]
    assert {(r.service, r.action, r.protocol, r.status) for r in aws.api.requests} == {
        ("sts", "GetCallerIdentity", sts_protocol, 200), ("sts", "AssumeRole", sts_protocol, 200),
        ("cloudtrail", "LookupEvents", cloudtrail_protocol, 200)}


# A call each service refuses, the code it refuses it with and the HTTP status.
SERVICE_ERRORS = {
    "cloudtrail": (lambda client: client.lookup_events(LookupAttributes=[
        {"AttributeKey": "EventSource", "AttributeValue": "ses.amazonaws.com"},
        {"AttributeKey": "Username", "AttributeValue": "alice"}]), "InvalidLookupAttributesException", 400),
    "sts": (lambda client: client.assume_role(RoleArn="arn:aws:iam::999999999999:role/unknown", RoleSessionName="s1"),
            "AccessDenied", 403),
}


@pytest.mark.parametrize("service, protocol", [(service, protocol) for service in SERVICE_ERRORS
                                               for protocol in protocols_of(service)])
def test_a_cloudtrail_or_sts_error_reaches_the_client_as_its_code_in_every_protocol(aws, service, protocol):
    call, code, status = SERVICE_ERRORS[service]
    client = speaking(**{service: protocol}).client(service, region_name="us-east-1", config=NO_RETRIES)
    with pytest.raises(ClientError) as caught:
        call(client)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert [(r.service, r.protocol, r.error) for r in aws.api.requests] == [(service, protocol, code)]


# ── the router ───────────────────────────────────────────────────────────────────────────────────────


def test_a_model_naming_a_protocol_the_stand_ins_cannot_speak_stops_them_from_starting():
    model = copy.deepcopy(botocore.session.get_session().get_service_data("athena"))
    model["metadata"].update(protocol="smithy-rpc-v3-telepathy", protocols=["smithy-rpc-v3-telepathy"])
    with pytest.raises(UnsupportedProtocol, match="smithy-rpc-v3-telepathy"):
        Service("athena", model=ServiceModel(model, "athena"))


# Every protocol the router speaks, with an operation of that shape: a request, what the handler must see of it,
# and an answer (timestamps and integers are what the protocols carry differently).
WHEN = 1_736_000_000.5
ROUND_TRIPS = {
    "rpc": ("cloudtrail", "LookupEvents",
            {"LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "alice"}],
             "StartTime": WHEN, "MaxResults": 7, "NextToken": "t"},
            {"Events": [{"EventId": "e-1", "EventTime": WHEN, "ReadOnly": "true"}], "NextToken": "n"}),
    REST_JSON: ("athena", "GetQueryResults", {"QueryExecutionId": NO_SUCH_QUERY, "MaxResults": 7, "NextToken": "t"},
                {"ResultSet": {"Rows": [{"Data": [{"VarCharValue": "a"}, {}]}]}, "UpdateCount": 0, "NextToken": "n"}),
}


@pytest.mark.parametrize("protocol", sorted(SPOKEN))
def test_the_router_reads_botocores_requests_and_botocore_reads_its_answers(protocol):
    """Each protocol the router speaks, whether or not an installed model names it yet (RPC v2 CBOR): botocore's
    own serializer writes the request, and its parser reads the answer and the error."""
    service_name, operation, params, output = ROUND_TRIPS[REST_JSON if protocol == REST_JSON else "rpc"]
    model = copy.deepcopy(botocore.session.get_session().get_service_data(service_name))
    model["metadata"].update(forced_metadata(service_name, protocol))
    if protocol == QUERY:  # awsQuery wraps every output in <OperationResult>; its models say so on each output
        model["shapes"][model["operations"][operation]["output"]["shape"]]["resultWrapper"] = f"{operation}Result"
    service_model = ServiceModel(model, service_name)
    router = Router(Service(service_name, model=service_model))
    operation_model = service_model.operation_model(operation)
    serialized = create_serializer(protocol).serialize_to_request(params, operation_model)
    prepare_request_dict(serialized, endpoint_url="http://127.0.0.1:1")
    sent = create_request_object(serialized).prepare()
    url = urlsplit(sent.url)
    request = HttpRequest(sent.method, url.path + (f"?{url.query}" if url.query else ""), sent.headers,
                          sent.body.encode() if isinstance(sent.body, str) else sent.body or b"")

    call = router.route(request)
    assert (call.refusal, call.service, call.operation, call.protocol) == (None, service_name, operation, protocol)
    assert call.params == params

    parser = create_parser(protocol)
    answer = router.answer(call, output)
    read = parser.parse(_response(answer), operation_model.output_shape)
    read.pop("ResponseMetadata")
    expected = copy.deepcopy(output)
    if service_name == "cloudtrail":
        expected["Events"][0]["EventTime"] = datetime.fromtimestamp(WHEN, UTC)
    assert read == expected
    refused = parser.parse(_response(router.error(call, AwsError("ThrottlingException", "Rate exceeded"))),
                           operation_model.output_shape)
    assert refused["Error"]["Code"] == "ThrottlingException" and refused["Error"]["Message"] == "Rate exceeded"


def _response(answer: HttpAnswer) -> dict:
    return {"status_code": answer.status, "headers": HeadersDict(answer.headers), "body": answer.body}
