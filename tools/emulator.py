#!/usr/bin/env python3
"""Local AWS emulator for wfboot's tests and benchmarks.

One process serving moto's WSGI app in-process (the same app `moto_server` runs) on a
threaded werkzeug server, wrapped in a middleware that

  * logs every request as one JSON line (service, action, read/write, status, access key; "ms" the
    whole handling time, "moto_ms" the part spent inside moto),
  * hands requests to moto one at a time, first come first served (moto is not thread-safe),
  * optionally adds latency to every AWS request (--latency-ms),
  * optionally injects faults into AWS requests (--fault-rate, --fault-kinds, seeded by --seed): `throttle`,
    `500`, `503` and `drop` answer a request with an error (or a dropped connection) instead of calling moto;
    `drop-after` and `500-after` let a write reach moto (it takes effect when moto answers 2xx), then lose moto's
    answer: the client gets a dropped connection, or an HTTP 500 (IAM's and STS's `ServiceFailure`). The
    after-kinds apply to writes only (see "Fault draw" below). `blackhole` (any request, not passed to moto) and
    `blackhole-after` (writes: moto takes the write) never answer: a network black hole, the connection open and
    silent until the client closes it (or --blackhole-cap seconds, 120 by default, have passed); only when named,
  * optionally answers an action slowly but correctly (--slow ACTION=SECONDS, repeatable): a slow but healthy call,
  * speaks CloudWatch's Smithy RPC v2 CBOR protocol, which the AWS SDKs now use and moto does not, by
    translating to and from moto's awsJson (tools/rpcv2_cbor.py),
  * answers iam:SimulatePrincipalPolicy and iam:SimulateCustomPolicy, which moto lacks, by evaluating the
    principal's policies as moto stores them with @cloud-copilot/iam-simulate (tools/simulator.py),
  * checks the signature of a request without a body (a GET) on the empty payload it has, where moto's
    enforcement mode rejected every one (tools/moto_fixes.py),
  * serves counters at GET /__emulator/stats (DELETE zeroes them),
  * takes controls at POST /__emulator/control: {"hold_after_writes": N|null} holds every request after
    the next N writes (a crash point: the client is killed while held), {"fault_rate": F}, {"settle": true},
    {"fault_call": {"action": A, "nth": N, "kind": K, "access_key": KEY (optional)}} gives the Nth request of
    action A from now (of KEY's) the fault K, without touching the seeded draw, {"slow": {A: S}} sets --slow (0 ends it),
  * answers CloudFormation's StackSet actions as CloudFormation does (tools/stacksets.py): operations run in the
    background, account by account (--stackset-account-seconds each), with OperationPreferences, OperationId
    idempotency, OperationInProgressException or managed execution's queue, DeploymentTargets' account filters,
    per-account failures with CloudFormation's StatusReason, auto-deployment when Organizations moves or creates an
    account, trusted access and delegated administrators; that work is not a request and is not logged as one,
    {"stacksets_settle": true} on the control API ends every running operation at once, and /__emulator/stats has a
    "stacksets" section,
  * with --realism (or its finer flags), adds what real AWS does and moto does not: IAM read-after-write lag,
    EC2's late view of new instance profiles, ConcurrentModification, DeleteConflict, session expiry, Lambda's,
    Step Functions' and Batch's late view of a new role, Batch's CREATING/DELETING states, an instance's new
    metadata options `pending` before `applied` (tools/realism.py, which
    says what each models and its source).

Usage:
    python tools/emulator.py [--host 127.0.0.1] [--port 0] [--log FILE] [--latency-ms N] [--no-gc]
        [--fault-rate F] [--fault-kinds throttle,500,503,drop,drop-after,500-after,blackhole,blackhole-after]
        [--seed S] [--slow ACTION=SECONDS]... [--blackhole-cap S]
        [--no-simulator] [--no-stdin-watch]
        [--realism] [--iam-lag S] [--ec2-lag S] [--delete-conflict S] [--concurrent-modification]
        [--write-hold S] [--lag-jitter F] [--session-seconds S] [--service-lag S] [--batch-transition S]
        [--metadata-transition S]
        [--stackset-account-seconds S]

Once listening it prints exactly one line on stdout, `READY http://HOST:PORT`; everything
else goes to stderr. It exits with status 0 on SIGTERM or SIGINT, and when its stdin (if a
pipe or socket) reaches end-of-file: a parent that spawns it with a stdin pipe and dies
closes that pipe, so the emulator never outlives its parent.

It binds only to addresses in 127.0.0.0/8 and never sends traffic anywhere.

Fault draw: for each AWS request that reaches the fault stage (not held, not answered by the realism mode's
ConcurrentModification), the kinds applicable to it are the --fault-kinds entries in their given order, less
the after-kinds (`drop-after`, `500-after`, `blackhole-after`) when the request is a read. A fault planned by
{"fault_call": ...} comes first and draws nothing. With none applicable the request gets no fault and the
seeded RNG is not touched; otherwise one `random()` below the fault rate picks a fault, then one `choice()` among
the applicable kinds picks which. So `--fault-kinds drop-after --fault-rate 0.3` faults 30 % of writes and no
read, and with `throttle,drop-after` a read is throttled at the rate while a write gets either kind, half each.
A run with only the older kinds draws exactly as before. Requests reach this stage in arrival order, so the same
requests in the same order meet the same faults for a given --seed. The default kinds are the four older ones;
the after-kinds are used only when named. {"fault_rate": F} on the control API changes the rate for all kinds.

The request log (--log, one JSON object per line): t, method, path, service, action, write, status (what the
client got; null when its connection was dropped or black-holed), access_key, fault (null, a kind above, or
"held"), ms (for a black hole: until the client closed the connection; its entry is written then), internal;
moto_ms when moto was called; slow (the --slow seconds) when there are; error (the start of an error body) and
realism (what the realism mode answered) when there are. A `drop-after`, `500-after` or `blackhole-after` entry
also has moto_status (what moto, or the realism
mode inside moto's lock, answered the write: never sent to the client) and applied (true when moto_status was
2xx: the write took effect although the client was told otherwise); its error is then moto's, if it failed.
Other entries have neither field: for them a write took effect when fault is null and status is 2xx.
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import json
import os
import random
import re
import select
import signal
import socket
import stat
import struct
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

import realism
import rpcv2_cbor  # tools/rpcv2_cbor.py: CloudWatch's RPC v2 CBOR protocol, which moto lacks
import simulator  # tools/simulator.py, beside this file
import stacksets  # tools/stacksets.py

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
FAULT_KINDS = ("throttle", "500", "503", "drop", "drop-after", "500-after", "blackhole", "blackhole-after")
# Kinds that call moto first and lose its answer afterwards: they apply to writes only.
AFTER_KINDS = ("drop-after", "500-after", "blackhole-after")
# Kinds that never answer: the connection stays open and silent until the client closes it (or --blackhole-cap).
BLACKHOLE_KINDS = ("blackhole", "blackhole-after")
# --fault-kinds' default: the kinds that answer instead of moto (the after-kinds must be asked for by name).
DEFAULT_FAULT_KINDS = ("throttle", "500", "503", "drop")
# IAM's and STS's own code for an HTTP 500 (IAM API Reference, Common Errors, and every IAM operation's errors).
SERVICE_FAILURE = ("ServiceFailure", "The request processing has failed because of an unknown error, "
                   "exception or failure.")
INTERNAL_PREFIX = "/moto-api/"
STATS_PATH = "/__emulator/stats"
CONTROL_PATH = "/__emulator/control"

# SigV4: "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/iam/aws4_request, ..."
# (the same scope appears in the X-Amz-Credential query parameter of presigned URLs).
CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/\d{8}/[^/,\s]+/([^/,\s]+)/aws4_request")
READ_PREFIXES = ("Get", "List", "Describe", "Simulate", "Head")
REST_READ_PREFIXES = ("describe", "list")
# REST services whose errors are XML documents (<Error>...); other REST services
# (lambda, batch, ...) are rest-json and get JSON error bodies.
REST_XML_SERVICES = {"s3", "s3-control", "route53", "cloudfront"}


def log(msg: str) -> None:
    print(f"emulator: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Request classification
# --------------------------------------------------------------------------------------


class RequestInfo:
    """What the middleware learned about one request."""

    __slots__ = ("service", "access_key", "action", "write", "protocol")

    def __init__(self) -> None:
        self.service: str | None = None
        self.access_key: str | None = None
        self.action: str | None = None
        self.write: bool = False
        # "query" (iam, sts, ec2), "json" (X-Amz-Target: sqs, sfn, ...), "cbor" (Smithy RPC v2 CBOR: cloudwatch),
        # "rest" (lambda, batch, s3)
        self.protocol: str = "rest"


def is_read_action(action: str) -> bool:
    return action == "GetCallerIdentity" or action.startswith(READ_PREFIXES)


def is_read_rest(method: str, path: str) -> bool:
    if method in ("GET", "HEAD"):
        return True
    if method == "POST":
        last = path.rstrip("/").rsplit("/", 1)[-1].lower()
        return last.startswith(REST_READ_PREFIXES)
    return False


def first_value(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[0] if values else None


def classify(environ: dict[str, Any], body: bytes) -> RequestInfo:
    info = RequestInfo()
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)

    m = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if m is None:
        credential = first_value(query, "X-Amz-Credential")
        if credential:
            m = CREDENTIAL_RE.search("Credential=" + credential)
    if m is not None:
        info.access_key, info.service = m.group(1), m.group(2)

    target = environ.get("HTTP_X_AMZ_TARGET")
    cbor_operation = rpcv2_cbor.operation(environ)
    if cbor_operation:
        # Smithy RPC v2 CBOR: POST /service/<service>/operation/<Operation> (CloudWatch).
        info.protocol = "cbor"
        info.action = cbor_operation
    elif target:
        # JSON protocols: "AmazonSQS.SendMessage", "AWSStepFunctions.StartExecution", ...
        info.protocol = "json"
        info.action = target.rsplit(".", 1)[-1]
    else:
        action = first_value(query, "Action")
        content_type = environ.get("CONTENT_TYPE", "")
        if action is None and body and (
            not content_type or content_type.startswith("application/x-www-form-urlencoded")
        ):
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            action = first_value(form, "Action")
        if action is not None:
            info.protocol = "query"
            info.action = action

    if info.action is not None:
        info.write = not is_read_action(info.action)
    else:
        info.action = f"{method} {path}"
        info.write = not is_read_rest(method, path)
    return info


# --------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------


class DropConnection(ConnectionError):
    """Raised by the middleware for the `drop` and `drop-after` faults and for held requests.

    werkzeug's request handler treats a ConnectionError raised by the application as a
    dropped client connection: it writes nothing and calls `connection_dropped`, which
    DroppingRequestHandler below turns into an abortive close (TCP RST).
    """


def xml_error(code: str, message: str, sender: bool, request_id: str) -> bytes:
    kind = "Sender" if sender else "Receiver"
    return (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>"
        f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
        f"</ErrorResponse>"
    ).encode()


def fault_response(kind: str, info: RequestInfo, environ: dict[str, Any]):
    """Status line, headers and body of an injected AWS error in the request's protocol."""
    internal = ("500 Internal Server Error", "InternalFailure",
                "We encountered an internal error. Please try again.")
    status, code, message = {
        "throttle": ("400 Bad Request", "Throttling", "Rate exceeded"),
        "500": internal,
        "500-after": internal,
        "503": ("503 Service Unavailable", "ServiceUnavailable",
                "Service is unavailable. Please try again later."),
    }[kind]
    if kind == "500-after" and info.protocol == "query" and info.service in ("iam", "sts"):
        code, message = SERVICE_FAILURE
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id)]
    if info.protocol == "query":
        body = xml_error(code, message, kind == "throttle", request_id)
        headers.append(("Content-Type", "text/xml"))
    elif info.protocol == "cbor":
        if kind == "throttle":
            code = "ThrottlingException"
        body = rpcv2_cbor.error_body(code, message)
        headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
    elif info.protocol == "rest" and info.service in REST_XML_SERVICES:
        code = "SlowDown" if kind == "throttle" else code
        body = (f"<Error><Code>{code}</Code><Message>{message}</Message>"
                f"<RequestId>{request_id}</RequestId></Error>").encode()
        headers.append(("Content-Type", "application/xml"))
    else:
        # awsJson (X-Amz-Target) and restJson services: JSON body plus the error type header.
        if kind == "throttle":
            code = "ThrottlingException"
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = environ.get("CONTENT_TYPE", "")
        if not content_type.startswith("application/x-amz-json"):
            content_type = "application/json"
        headers += [("Content-Type", content_type), ("x-amzn-ErrorType", code)]
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body


# --------------------------------------------------------------------------------------
# Middleware
# --------------------------------------------------------------------------------------


class FairLock:
    """A lock taken in the order it was asked for (threading.Lock is not fair): requests reach moto one at a
    time, first come first served, like a server's queue, instead of in an order the GIL happens to pick."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._cond.wait()

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


class EmulatorMiddleware:
    def __init__(
        self,
        app: Callable,
        log_file: io.TextIOBase | None,
        latency_ms: float,
        fault_rate: float,
        fault_kinds: list[str],
        seed: int,
        realism: "realism.Realism | None" = None,
        simulate: bool = True,
        slow: dict[str, float] | None = None,
        blackhole_cap_s: float = 120.0,
    ) -> None:
        self.app = app
        # --slow: per action, seconds before it is handled (a slow but healthy call).
        self.slow: dict[str, float] = dict(slow or {})
        self.blackhole_cap_s = blackhole_cap_s
        # {"fault_call": ...} on the control API: faults planned for the Nth request of an action.
        self.planned: list[dict[str, Any]] = []
        self.realism = realism
        self.log_file = log_file
        self.latency_s = latency_ms / 1000.0
        self.fault_rate = fault_rate
        self.fault_kinds = fault_kinds
        self.rng = random.Random(seed)
        self.lock = threading.Lock()  # guards rng, counters, the hold and the log file
        self.moto_lock = FairLock()
        # The policy simulator's node process, warmed up once listening (None: --no-simulator).
        self.sidecar: simulator.Sidecar | None = simulator.Sidecar() if simulate else None
        self.simulator_warned = False
        self.in_flight = 0
        # Crash simulation: once `hold_after` writes have been admitted (counted from when the hold was set),
        # every further AWS request is held, never reaching moto, until the hold is lifted; then the held
        # requests get a dropped connection. A test kills the client meanwhile: "killed right after write N".
        self.hold_after: int | None = None
        self.admitted_writes = 0
        self.released = threading.Event()
        self.released.set()
        # CloudFormation StackSets' engine (tools/stacksets.py), set once moto is loaded.
        self.stacksets: "stacksets.Engine | None" = None
        self.reset_stats()

    def reset_stats(self) -> None:
        self.requests = 0
        self.writes = 0
        self.by_action: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.realism_answers: Counter[str] = Counter()

    def stats(self) -> dict[str, Any]:
        stats = {
            "requests": self.requests,
            "writes": self.writes,
            "by_action": dict(self.by_action),
            "faults": dict(self.faults),
        }
        if self.realism is not None:
            stats["realism"] = {"answers": dict(self.realism_answers), **self.realism.stats()}
        return stats

    def planned_fault(self, info: RequestInfo) -> str | None:
        """The fault {"fault_call": ...} planned for this request, if it is the Nth of its action since then (an
        after-kind counts writes only; `access_key`, when given, counts that key's requests only). The seeded
        draw is not touched."""
        with self.lock:
            for plan in self.planned:
                if plan["action"] != info.action or (plan["kind"] in AFTER_KINDS and not info.write):
                    continue
                if plan.get("access_key") not in (None, info.access_key):
                    continue
                plan["seen"] += 1
                if plan["seen"] == plan["nth"]:
                    self.planned.remove(plan)
                    return plan["kind"]
        return None

    def pick_fault(self, write: bool) -> str | None:
        """The fault for a request, by the rule of the module docstring's "Fault draw"."""
        kinds = self.fault_kinds if write else [k for k in self.fault_kinds if k not in AFTER_KINDS]
        if self.fault_rate <= 0 or not kinds:
            return None
        with self.lock:
            if self.rng.random() < self.fault_rate:
                return self.rng.choice(kinds)
        return None

    def record(self, entry: dict[str, Any], count: bool) -> None:
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self.lock:
            if count:
                self.requests += 1
                self.writes += entry["write"]
                self.by_action[entry["action"]] += 1
                if entry["fault"]:
                    self.faults[entry["fault"]] += 1
                if entry.get("realism"):
                    self.realism_answers[entry["realism"]] += 1
            if self.log_file is not None:
                self.log_file.write(line)
                self.log_file.flush()

    def close_log(self) -> None:
        with self.lock:
            if self.log_file is not None:
                self.log_file.close()
                self.log_file = None

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")

        if path == STATS_PATH:
            return self.serve_stats(method, start_response)
        if path == CONTROL_PATH:
            return self.serve_control(environ, method, start_response)

        start = time.monotonic()
        entry: dict[str, Any] = {
            "t": time.time(), "method": method, "path": path, "service": None,
            "action": None, "write": False, "status": None, "access_key": None,
            "fault": None, "ms": 0.0, "internal": False,
        }

        if path.startswith(INTERNAL_PREFIX):
            # moto's own control API (reset, ...): no latency, no faults, not counted.
            entry.update(service="moto-api", action=f"{method} {path}",
                         write=not is_read_rest(method, path), internal=True)
            return self.call_app(environ, start_response, entry, start, count=False)

        with self.lock:
            self.in_flight += 1
        try:
            return self.handle_aws(environ, start_response, entry, start)
        finally:
            with self.lock:
                self.in_flight -= 1

    def handle_aws(self, environ, start_response, entry, start) -> Iterable[bytes]:
        # Read the whole body to find the action, then give moto an identical stream.
        body = read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))

        info = classify(environ, body)
        entry.update(service=info.service, action=info.action, write=info.write,
                     access_key=info.access_key)

        if self.must_hold(info.write):
            self.released.wait()  # returns at once in drop mode
            entry["fault"] = "held"
            entry["ms"] = round((time.monotonic() - start) * 1000, 3)
            self.record(entry, count=True)
            raise DropConnection("emulator: held request released")

        if self.latency_s > 0:
            # Each request runs on its own thread, so concurrent requests sleep in parallel.
            time.sleep(self.latency_s)
        slow = self.slow.get(info.action or "")
        if slow:
            # --slow: a slow but healthy call, answered correctly after its time (slept in parallel too).
            entry["slow"] = slow
            time.sleep(slow)

        # Real AWS's concurrency (tools/realism.py): a write may be refused, or hold its entity for a moment.
        ticket = self.realism.admit(environ, body, info.service, info.action, info.write) if self.realism else None
        try:
            if ticket is not None and ticket.answer is not None:
                a = ticket.answer
                entry.update(status=int(a.status.split()[0]), realism=a.kind,
                             error=a.body[:400].decode("utf-8", errors="replace"))
                start_response(a.status, a.headers)
                entry["ms"] = round((time.monotonic() - start) * 1000, 3)
                self.record(entry, count=True)
                return [a.body]
            return self.handle_admitted(environ, start_response, entry, start, info, body)
        finally:
            if ticket is not None:
                ticket.close()

    def handle_admitted(self, environ, start_response, entry, start, info: RequestInfo,
                        body: bytes) -> Iterable[bytes]:
        fault = self.planned_fault(info) or self.pick_fault(info.write)
        if fault is None and info.service == "iam" and info.action in simulator.ACTIONS and self.sidecar:
            answer = self.simulate(environ, start_response, entry, start, info, body)
            if answer is not None:
                return answer
        if fault is None:
            return self.call_app(environ, start_response, entry, start, count=True)

        entry["fault"] = fault
        if fault in AFTER_KINDS:
            return self.call_app_then_fault(fault, environ, start_response, entry, start, info)
        return self.answer_fault(fault, environ, start_response, entry, start, info)

    def answer_fault(self, fault: str, environ, start_response, entry, start, info: RequestInfo) -> list[bytes]:
        """Drop the connection (`drop`, `drop-after`), never answer (`blackhole`, `blackhole-after`), or answer the
        fault's error in the request's protocol."""
        if fault in BLACKHOLE_KINDS:
            self.swallow(environ)
            entry["ms"] = round((time.monotonic() - start) * 1000, 3)
            self.record(entry, count=True)
            raise DropConnection(f"emulator fault: {fault}")
        if fault in ("drop", "drop-after"):
            entry["ms"] = round((time.monotonic() - start) * 1000, 3)
            self.record(entry, count=True)
            raise DropConnection(f"emulator fault: {fault}")
        status, headers, payload = fault_response(fault, info, environ)
        entry["status"] = int(status.split()[0])
        start_response(status, headers)
        entry["ms"] = round((time.monotonic() - start) * 1000, 3)
        self.record(entry, count=True)
        return [payload]

    def swallow(self, environ) -> None:
        """A network black hole: send nothing and keep the connection open until the client closes it (it gave
        up), or --blackhole-cap seconds have passed, so that no request thread is held forever. Other requests are
        served meanwhile (each connection has its own thread)."""
        sock = environ.get("werkzeug.socket")
        deadline = time.monotonic() + self.blackhole_cap_s
        while time.monotonic() < deadline:
            if sock is None:
                time.sleep(0.1)
                continue
            try:
                readable, _, _ = select.select([sock], [], [], 0.1)
                if readable and sock.recv(1, socket.MSG_PEEK) == b"":
                    return  # end-of-file: the client closed its side
                if readable:
                    time.sleep(0.1)  # more bytes (a pipelined request) are not read: the hole answers nothing
            except (OSError, ValueError):
                return  # reset or already closed

    def simulate(self, environ, start_response, entry, start, info: RequestInfo, body: bytes) -> list[bytes] | None:
        """The policy simulator's answer, or None (node or its package missing) to let moto answer as it always has."""
        try:
            status, headers, payload = simulator.handle(self.sidecar, info.action or "", environ, body,
                                                        info.access_key, self.moto_lock)
        except simulator.SimulatorUnavailable as e:
            if not self.simulator_warned:
                self.simulator_warned = True
                log(f"policy simulator unavailable ({e}); moto answers Simulate* requests")
            return None
        entry["status"] = int(status.split()[0])
        if entry["status"] >= 400:
            entry["error"] = payload[:400].decode("utf-8", errors="replace")
        start_response(status, headers)
        entry["ms"] = round((time.monotonic() - start) * 1000, 3)
        self.record(entry, count=True)
        return [payload]

    def run_moto(self, environ, capture: Callable, entry: dict[str, Any]) -> list[bytes]:
        """moto's (buffered) answer; `capture` is its start_response."""
        # Buffer the (small) moto response so the log line carries the full handling time. moto is not
        # thread-safe (concurrent writes sometimes fail with "dictionary changed size during iteration"),
        # so requests reach it one at a time; the added latency is still slept in parallel, before this.
        with self.moto_lock:
            entered = time.monotonic()
            try:
                result = self.app(environ, capture)
                try:
                    return list(result)
                finally:
                    if hasattr(result, "close"):
                        result.close()
            finally:
                # Time moto itself took (the "ms" field also counts waiting for the lock and latency).
                entry["moto_ms"] = round((time.monotonic() - entered) * 1000, 3)
                if environ.get("emulator.realism"):  # answered by tools/realism.py, not by moto
                    entry["realism"] = environ["emulator.realism"]

    def unadmit_failed_write(self, status: int | None) -> None:
        """A write moto failed (it has thread-safety bugs under concurrent writes) changed nothing: it does not
        use up one of the writes a hold admits, so the client's retry is admitted."""
        if (status or 500) >= 500:
            with self.lock:
                if self.hold_after is not None and self.admitted_writes > 0:
                    self.admitted_writes -= 1

    def call_app(self, environ, start_response, entry, start, count: bool) -> list[bytes]:
        def capture(status: str, headers, exc_info=None):
            entry["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        try:
            chunks = self.run_moto(environ, capture, entry)
            if (entry["status"] or 0) >= 400:
                # The start of an error body says why (e.g. which action an enforced policy denied).
                entry["error"] = b"".join(chunks)[:400].decode("utf-8", errors="replace")
        except Exception:
            # moto lets some exceptions escape (e.g. NotImplementedError for unimplemented
            # actions); werkzeug answers those with a 500.
            entry["status"] = 500
            raise
        finally:
            entry["ms"] = round((time.monotonic() - start) * 1000, 3)
            if entry["write"]:
                self.unadmit_failed_write(entry["status"])
            self.record(entry, count)
        return chunks

    def call_app_then_fault(self, fault: str, environ, start_response, entry, start,
                            info: RequestInfo) -> list[bytes]:
        """`drop-after` and `500-after` (writes only): moto handles the write as usual, so it takes effect when
        moto answers 2xx, then the client gets a dropped connection or an HTTP 500 instead of moto's answer."""
        moto: dict[str, int] = {}

        def capture(status: str, headers, exc_info=None):
            moto["status"] = int(status.split()[0])
            return lambda _data: None  # moto's answer never reaches the client

        try:
            chunks = self.run_moto(environ, capture, entry)
        except Exception as e:  # noqa: BLE001 - what werkzeug would have answered with a 500
            log(f"moto failed {info.action} under fault {fault}: {e!r}")
            chunks, moto["status"] = [], 500
        moto_status = moto.get("status", 500)
        entry["moto_status"] = moto_status
        entry["applied"] = 200 <= moto_status < 300
        if moto_status >= 400:
            entry["error"] = b"".join(chunks)[:400].decode("utf-8", errors="replace")
        self.unadmit_failed_write(moto_status)
        return self.answer_fault(fault, environ, start_response, entry, start, info)

    def must_hold(self, write: bool) -> bool:
        with self.lock:
            if self.hold_after is None:
                return False
            if write and self.admitted_writes < self.hold_after:
                self.admitted_writes += 1
                return False
            return self.admitted_writes >= self.hold_after

    def serve_control(self, environ, method: str, start_response: Callable) -> list[bytes]:
        """POST JSON: {"hold_after_writes": N} arms the hold (null lifts it and drops held requests);
        {"drop_held": true} drops the held requests and every later one while the hold stays armed (so a
        request a killed client sent just before dying never reaches moto); {"fault_rate": F} changes the fault
        probability; {"stacksets_settle": true} ends every running and queued StackSet operation now (their remaining
        accounts are deployed at once; the answer's `stacksets_settled` counts the steps), {"stackset_account_seconds":
        S} changes the time an operation takes per account from now on. The answer includes
        `in_flight`, the AWS requests being handled."""
        if method != "POST":
            start_response("405 Method Not Allowed", [("Allow", "POST")])
            return [b""]
        try:
            body = json.loads(read_body(environ) or b"{}")
        except ValueError:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"body must be JSON"]
        settled = None
        if "stackset_account_seconds" in body and self.stacksets is not None:
            self.stacksets.seconds = max(0.0, float(body["stackset_account_seconds"]))
        if body.get("stacksets_settle") and self.stacksets is not None:
            settled = self.stacksets.settle()  # takes moto's lock, never inside self.lock
        with self.lock:
            if "hold_after_writes" in body:
                n = body["hold_after_writes"]
                if n is None:
                    self.hold_after = None
                    self.released.set()
                else:
                    self.hold_after = int(n)
                    self.admitted_writes = 0
                    self.released.clear()
            if body.get("drop_held"):
                self.released.set()
            if "fault_rate" in body:
                self.fault_rate = float(body["fault_rate"])
            if "fault_call" in body:
                plan = body["fault_call"]
                if plan.get("kind") not in FAULT_KINDS or int(plan.get("nth", 0)) < 1 or not plan.get("action"):
                    start_response("400 Bad Request", [("Content-Type", "text/plain")])
                    return [b"fault_call needs action, nth >= 1 and a kind of --fault-kinds"]
                self.planned.append({"action": plan["action"], "nth": int(plan["nth"]), "kind": plan["kind"],
                                     "access_key": plan.get("access_key"), "seen": 0})
            if "slow" in body:
                for action, seconds in body["slow"].items():
                    if float(seconds) > 0:
                        self.slow[action] = float(seconds)
                    else:
                        self.slow.pop(action, None)
            if body.get("settle") and self.realism is not None:
                self.realism.settle()
            state = {"hold_after_writes": self.hold_after, "admitted_writes": self.admitted_writes,
                     "fault_rate": self.fault_rate, "in_flight": self.in_flight,
                     "fault_calls": [dict(p) for p in self.planned], "slow": dict(self.slow)}
        if settled is not None:
            state["stacksets_settled"] = settled
        payload = json.dumps(state).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    def serve_stats(self, method: str, start_response: Callable) -> list[bytes]:
        if method not in ("GET", "DELETE"):
            start_response("405 Method Not Allowed", [("Allow", "GET, DELETE")])
            return [b""]
        # StackSets' state is read under moto's lock, never inside self.lock.
        sets = self.stacksets.stats() if self.stacksets is not None else None
        with self.lock:
            stats = self.stats()
            if sets is not None:
                stats["stacksets"] = sets
            payload = json.dumps(stats).encode()
            if method == "DELETE":  # returns the counts, then zeroes them
                self.reset_stats()
                if self.stacksets is not None:
                    self.stacksets.reset_counters()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(payload)))])
        return [payload]


def read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if environ.get("wsgi.input_terminated"):
        # chunked request: werkzeug gives a stream that ends with the body
        return stream.read()
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return stream.read(length) if length > 0 else b""


# --------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Local AWS emulator (moto) for wfboot tests.")
    p.add_argument("--host", default="127.0.0.1", help="IPv4 address in 127.0.0.0/8")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    p.add_argument("--log", metavar="FILE", help="append one JSON line per request")
    p.add_argument("--latency-ms", type=float, default=0.0,
                   help="sleep this long before handling each AWS request")
    p.add_argument("--fault-rate", type=float, default=0.0,
                   help="probability (0..1) that an AWS request gets a fault (of the requests some kind "
                        "applies to: drop-after and 500-after apply to writes only)")
    p.add_argument("--fault-kinds", default=",".join(DEFAULT_FAULT_KINDS),
                   help="comma list of: throttle, 500, 503, drop (an error or a dropped connection instead of "
                        "calling moto), drop-after, 500-after (writes only: moto takes the write, then the client "
                        "gets a dropped connection or HTTP 500, ServiceFailure for IAM and STS, instead of moto's "
                        "answer), blackhole (never answered, not passed to moto: the connection stays open and silent "
                        "until the client closes it), blackhole-after (writes only: moto takes the write, the answer "
                        "never comes); a read draws among the listed kinds other than the *-after ones, and none "
                        "listed means no fault and no draw (default: throttle,500,503,drop)")
    p.add_argument("--seed", type=int, default=1, help="seed of the fault RNG")
    p.add_argument("--slow", action="append", default=[], metavar="ACTION=SECONDS",
                   help="answer every request of this API action (GetRole, SimulatePrincipalPolicy, ...) after "
                        "SECONDS, correctly: a slow but healthy call (repeatable)")
    p.add_argument("--blackhole-cap", type=float, default=120.0, metavar="S",
                   help="a black-holed connection (fault kinds blackhole, blackhole-after) the client has not "
                        "closed is closed after this long, so that no request thread is held forever (default 120)")
    p.add_argument("--no-gc", action="store_true",
                   help="switch off Python's cyclic garbage collector (benchmarks: its passes over moto's "
                        "large heap paused single requests for 10-70 ms at random moments)")
    p.add_argument("--no-simulator", action="store_true",
                   help="let moto answer iam:Simulate* (HTTP 500, not implemented) instead of the policy simulator")
    p.add_argument("--no-stdin-watch", action="store_true",
                   help="do not exit when stdin reaches end-of-file")
    realism.add_arguments(p)
    stacksets.add_arguments(p)
    args = p.parse_args(argv)
    args.realism_settings = realism.settings_from(args, p.error)

    try:
        ok = ipaddress.IPv4Address(args.host) in LOOPBACK
    except ValueError:
        ok = False
    if not ok:
        p.error(f"--host {args.host!r} refused: only IPv4 addresses in 127.0.0.0/8 are allowed")
    if not 0 <= args.port <= 65535:
        p.error("--port must be 0..65535")
    if args.latency_ms < 0:
        p.error("--latency-ms must be >= 0")
    if args.stackset_account_seconds < 0:
        p.error("--stackset-account-seconds must be >= 0")
    if not 0.0 <= args.fault_rate <= 1.0:
        p.error("--fault-rate must be within 0..1")
    kinds = [k.strip() for k in args.fault_kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        p.error(f"unknown --fault-kinds {unknown}; choose from {','.join(FAULT_KINDS)}")
    slow: dict[str, float] = {}
    for item in args.slow:
        action, _, seconds = item.partition("=")
        try:
            slow[action.strip()] = float(seconds)
        except ValueError:
            p.error(f"--slow {item!r}: expected ACTION=SECONDS, e.g. --slow GetRole=2")
        if not action.strip() or slow[action.strip()] < 0:
            p.error(f"--slow {item!r}: expected ACTION=SECONDS with SECONDS >= 0")
    args.slow = slow
    if args.blackhole_cap <= 0:
        p.error("--blackhole-cap must be > 0")
    if args.fault_rate > 0 and not kinds:
        p.error("--fault-rate > 0 needs at least one --fault-kinds entry")
    args.fault_kinds = kinds
    return args


def stdin_is_watchable() -> bool:
    """Watch stdin only when it is a pipe or a socket held by a parent process.

    /dev/null (e.g. `cmd &` in a script, or CI without stdin) would end at once, and
    reading a terminal from a background job would stop the process with SIGTTIN.
    """
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    # Signals are handled synchronously by the main thread (sigwait below). Block them
    # before any thread starts so every thread inherits the mask.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)

    # stdout carries only the READY line: anything moto or a library prints goes to stderr.
    ready_out = sys.stdout
    sys.stdout = sys.stderr

    if args.no_gc:
        # An emulator lives for one run; reference counting still frees almost everything moto allocates.
        import gc
        gc.disable()

    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    # Imported only now: moto reads its settings from the environment.
    import moto_fixes  # tools/moto_fixes.py, beside this file
    moto_fixes.apply()
    stacksets.install()
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class RequestHandler(MotoRequestHandler):
        # TCP_NODELAY on every connection: werkzeug writes a response's headers and body in separate sends,
        # and with Nagle's algorithm the body can wait for the client's delayed ACK (~40 ms on Linux), a stall
        # no real endpoint adds.
        disable_nagle_algorithm = True

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # the JSON log replaces werkzeug's per-request lines

        def connection_dropped(self, error: BaseException, environ=None) -> None:
            if isinstance(error, DropConnection):
                # Abortive close: SO_LINGER 0 makes close() send a RST, and the client sees
                # "connection reset" without a single response byte. The descriptor is
                # really closed once werkzeug closes its rfile/wfile wrappers.
                self.close_connection = True
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()
                except OSError:
                    pass

    log_file = open(args.log, "a", buffering=1, encoding="utf-8") if args.log else None
    moto_app = rpcv2_cbor.Translator(DomainDispatcherApplication(create_backend_app))
    real = realism.Realism(args.realism_settings, log) if args.realism_settings else None
    app = EmulatorMiddleware(
        real.wrap(moto_app) if real else moto_app,
        log_file=log_file,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        fault_kinds=args.fault_kinds,
        seed=args.seed,
        realism=real,
        simulate=not args.no_simulator,
        slow=args.slow,
        blackhole_cap_s=args.blackhole_cap,
    )
    app.stacksets = stacksets.configure(app.moto_lock, args.stackset_account_seconds, log)
    server = make_server(args.host, args.port, app, threaded=True,
                         request_handler=RequestHandler)
    port = server.server_address[1]
    # moto builds some URLs (e.g. lambda env vars) from MOTO_PORT.
    os.environ.setdefault("MOTO_PORT", str(port))

    reason = ["signal"]

    def wake_main(why: str) -> None:
        reason[0] = why
        os.kill(os.getpid(), signal.SIGTERM)  # blocked everywhere: picked up by sigwait

    def serve() -> None:
        try:
            server.serve_forever(poll_interval=0.1)
        except BaseException as e:  # noqa: BLE001 - report and make the process exit
            log(f"server loop failed: {e!r}")
            wake_main("server error")

    threading.Thread(target=serve, name="serve", daemon=True).start()

    if not args.no_stdin_watch and stdin_is_watchable():
        def watch_stdin() -> None:
            try:
                while os.read(0, 65536):
                    pass
            except OSError:
                pass
            wake_main("stdin closed")

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()

    print(f"READY http://{args.host}:{port}", file=ready_out, flush=True)
    if app.sidecar is not None:
        threading.Thread(target=app.sidecar.warm_up, name="simulator-warm-up", daemon=True).start()
    log(f"listening on http://{args.host}:{port} (pid {os.getpid()}, latency "
        f"{args.latency_ms:g} ms, fault rate {args.fault_rate:g})")
    if real:
        log(f"realism: {realism.describe(args.realism_settings)}")

    signum = signal.sigwait(stop_signals)
    why = reason[0] if reason[0] != "signal" else signal.Signals(signum).name
    log(f"stopping ({why})")
    server.shutdown()
    server.server_close()
    app.close_log()  # request threads still finishing (daemons) just stop logging
    if app.sidecar is not None:
        app.sidecar.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
