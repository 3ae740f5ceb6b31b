"""iam:SimulatePrincipalPolicy and iam:SimulateCustomPolicy for the emulator (tools/emulator.py).

moto does not implement the policy simulator (it answers HTTP 500). This module answers both actions in IAM's
response shape (the IAM API reference: SimulatePrincipalPolicy, SimulateCustomPolicy, EvaluationResult,
ResourceSpecificResult, Statement), evaluating the principal's identity policies as moto stores them — attached
and inline, the user's groups' too, the role's (and its permissions boundary) — with the npm package
@cloud-copilot/iam-simulate, an evaluator independent of wfboot's own src/policy_eval.rs. The package runs in one
long-lived node process (tools/iam-simulate/sidecar.mjs, JSON lines over stdin/stdout), started and warmed up in
the background once the emulator listens (or by the first simulation); scripts/setup-iam-simulate.sh installs it
into the git-ignored tools/iam-simulate/node_modules.

What the simulator does, as IAM documents it:
  * one EvaluationResult per action and resource (`*` when ResourceArns is empty), with the resource's
    ResourceSpecificResults when ResourceArns were given;
  * `ContextEntries` are the request context; a condition on a key they do not supply does not match, and the
    key is listed in MissingContextValues (for the statements that match the action and resource);
  * MatchedStatements: the Deny statements of an explicit deny, else the Allow statements that allowed it;
  * paging: MaxItems (1-1000, default 100) results a page, IsTruncated and an opaque Marker;
  * the principal must exist (NoSuchEntity); the ARN must be a user, group or role (InvalidInput);
  * with moto's IAM enforcement on (INITIAL_NO_AUTH_ACTION_COUNT reached), the caller needs
    iam:SimulatePrincipalPolicy on the principal (iam:SimulateCustomPolicy on `*`), judged the same way:
    AccessDenied otherwise.
What it does not model: SCPs and resource control policies (IAM's simulator shows SCPs through
OrganizationsDecisionDetail; an emulated account has none), and the cross-account EvalDecisionDetails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import threading
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

ACTIONS = ("SimulatePrincipalPolicy", "SimulateCustomPolicy")
SIDECAR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "iam-simulate", "sidecar.mjs")
NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"
DEFAULT_MAX_ITEMS = 100


class SimulatorUnavailable(RuntimeError):
    """node or the installed package is missing: the emulator then lets moto answer (HTTP 500), as before."""


class IamError(Exception):
    def __init__(self, status: int, code: str, message: str, sender: bool = True) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.sender = status, code, message, sender


# --------------------------------------------------------------------------------------------- node sidecar


class Sidecar:
    """One node process evaluating batches of cases, one batch at a time; started by warm_up() or on first use."""

    def __init__(self, script: str = SIDECAR) -> None:
        self.script = script
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.next_id = 0

    def _start(self) -> subprocess.Popen[bytes]:
        modules = os.path.join(os.path.dirname(self.script), "node_modules", "@cloud-copilot", "iam-simulate")
        if not os.path.isdir(modules):
            raise SimulatorUnavailable("tools/iam-simulate is not installed: run scripts/setup-emulator.sh")
        try:
            proc = subprocess.Popen(["node", self.script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=None, cwd=os.path.dirname(self.script))
        except OSError as e:
            raise SimulatorUnavailable(f"cannot start node: {e}") from e
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        if not ready.startswith(b'{"ready":true'):
            proc.kill()
            raise SimulatorUnavailable(f"the policy simulator did not start: {ready[:200]!r}")
        return proc

    def evaluate(self, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not cases:
            return []
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = self._start()
            self.next_id += 1
            line = json.dumps({"id": self.next_id, "cases": cases}, separators=(",", ":")) + "\n"
            assert self.proc.stdin is not None and self.proc.stdout is not None
            try:
                self.proc.stdin.write(line.encode())
                self.proc.stdin.flush()
                answer = json.loads(self.proc.stdout.readline() or b"null")
            except (OSError, ValueError) as e:
                self.proc.kill()
                self.proc = None
                raise SimulatorUnavailable(f"the policy simulator failed: {e}") from e
        if not isinstance(answer, dict) or answer.get("id") != self.next_id:
            raise SimulatorUnavailable(f"the policy simulator answered out of turn: {str(answer)[:200]}")
        return answer["results"]

    def warm_up(self) -> None:
        """Start node and evaluate one trivial case, so that the first real simulation does not wait for node's
        start and iam-simulate's data (a few hundred ms of CPU, which on a busy machine stalled the emulator's
        other requests too). Run by the emulator in a background thread once it listens; a missing package is
        reported by the first real simulation instead."""
        case = {"policies": [], "principal": "arn:aws:iam::123456789012:user/warm-up", "account": "123456789012",
                "action": "iam:GetUser", "resource": "arn:aws:iam::123456789012:user/warm-up", "context": {}}
        try:
            self.evaluate([case])
        except SimulatorUnavailable:
            pass

    def close(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None


# --------------------------------------------------------------------------------------------- request parsing


def form(body: bytes, query: str) -> dict[str, str]:
    params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    params.update({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()})
    return params


def members(params: dict[str, str], prefix: str) -> list[str]:
    out = []
    n = 1
    while f"{prefix}.member.{n}" in params:
        out.append(params[f"{prefix}.member.{n}"])
        n += 1
    return out


def context_entries(params: dict[str, str]) -> dict[str, Any]:
    """ContextEntries.member.N.{ContextKeyName, ContextKeyValues.member.M, ContextKeyType} as iam-simulate's context."""
    context: dict[str, Any] = {}
    n = 1
    while f"ContextEntries.member.{n}.ContextKeyName" in params:
        base = f"ContextEntries.member.{n}"
        name = params[f"{base}.ContextKeyName"]
        values = members(params, f"{base}.ContextKeyValues")
        kind = params.get(f"{base}.ContextKeyType", "string")
        if kind.endswith("List"):
            context[name] = values
        elif values:
            context[name] = values[0]
        n += 1
    return context


def parse_document(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(unquote(text))


# --------------------------------------------------------------------------------------------- moto's policies


class Source:
    """One identity policy as IAM's MatchedStatements name it, with its text for statement positions."""

    def __init__(self, policy_id: str, policy_type: str, text: str) -> None:
        self.id, self.type, self.text = policy_id, policy_type, text
        self.document = parse_document(text)


def default_document(policy: Any) -> str:
    for version in policy.versions:
        if version.is_default:
            return version.document
    return policy.versions[0].document if policy.versions else "{}"


def managed_source(policy: Any) -> Source:
    kind = "aws-managed" if ":iam::aws:policy/" in policy.arn else "user-managed"
    return Source(policy.name, kind, default_document(policy))


def principal_policies(arn: str) -> tuple[list[Source], list[Source]]:
    """The identity policies and the permissions boundary of the user, group or role `arn`, as moto stores them."""
    from moto.iam.exceptions import IAMException
    from moto.iam.models import iam_backends

    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "iam" or "/" not in parts[5]:
        raise IamError(400, "InvalidInput", f"Invalid ARN: {arn}")
    partition, account, resource = parts[1], parts[4], parts[5]
    kind, name = resource.split("/", 1)[0], resource.rsplit("/", 1)[-1]
    if kind not in ("user", "group", "role"):
        raise IamError(400, "InvalidInput",
                       f"Invalid ARN: {arn}: PolicySourceArn must be the ARN of a user, group or role")
    try:
        backend = iam_backends[account][partition]
    except KeyError:
        raise IamError(404, "NoSuchEntity", f"The {kind} with name {name} cannot be found.")
    policies: list[Source] = []
    boundaries: list[Source] = []
    try:
        if kind == "user":
            user = backend.get_user(name)
            policies += [Source(n, "user", d) for n, d in user.policies.items()]
            policies += [managed_source(p) for p in user.managed_policies.values()]
            for group in backend.get_groups_for_user(name):
                policies += [Source(n, "group", d) for n, d in group.policies.items()]
                policies += [managed_source(p) for p in group.managed_policies.values()]
        elif kind == "group":
            group = backend.get_group(name)
            policies += [Source(n, "group", d) for n, d in group.policies.items()]
            policies += [managed_source(p) for p in group.managed_policies.values()]
        else:
            role = backend.get_role(name)
            policies += [Source(n, "role", d) for n, d in role.policies.items()]
            policies += [managed_source(p) for p in role.managed_policies.values()]
            boundary_arn = getattr(role, "permissions_boundary_arn", None)
            if boundary_arn:
                boundary = backend.managed_policies.get(boundary_arn)
                if boundary is None:
                    boundary = backend.get_policy(boundary_arn)
                boundaries.append(managed_source(boundary))
    except IAMException as e:
        if getattr(e, "code", "") == "NoSuchEntity":
            raise IamError(404, "NoSuchEntity", f"The {kind} with name {name} cannot be found.")
        raise
    return policies, boundaries


def caller_policies(environ: dict[str, Any], access_key: str, region: str) -> tuple[str, list[Source]]:
    """The caller's ARN and identity policies, for moto's enforcement mode, through moto's own key look-up."""
    from moto.iam.access_control import CreateAccessKeyFailure, create_access_key
    from moto.iam.models import get_account_id_from
    from moto.utilities.utils import get_partition

    headers = {}
    if environ.get("HTTP_X_AMZ_SECURITY_TOKEN"):
        headers["X-Amz-Security-Token"] = environ["HTTP_X_AMZ_SECURITY_TOKEN"]
    try:
        key = create_access_key(account_id=get_account_id_from(access_key), partition=get_partition(region),
                                access_key_id=access_key, headers=headers)
    except CreateAccessKeyFailure:
        raise IamError(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
    sources = []
    for i, policy in enumerate(key.collect_policies()):
        if hasattr(policy, "versions"):
            sources.append(managed_source(policy))
        elif isinstance(policy, str):
            sources.append(Source(f"inline-{i + 1}", "user", policy))
        else:
            sources.append(Source(policy.get("policy_name", f"inline-{i + 1}"), "user", policy["policy_document"]))
    return key.arn, sources


def enforcement_on() -> bool:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


def count_unauthenticated_request() -> None:
    # moto counts every request it lets through before enforcement starts; a simulation is one of them.
    from moto.core.authorization import ActionAuthenticatorMixin

    ActionAuthenticatorMixin.request_count += 1


# --------------------------------------------------------------------------------------------- positions


def statement_positions(text: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(line, column) of the start and the end of each statement in a policy's text, 1-based, as IAM reports
    MatchedStatements' StartPosition and EndPosition; empty when the text cannot be scanned."""
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def where(offset: int) -> tuple[int, int]:
        line = text.count("\n", 0, offset) + 1
        return line, offset - (text.rfind("\n", 0, offset) + 1) + 1

    try:
        i = skip(0)
        if text[i] != "{":
            return []
        i = skip(i + 1)
        while i < len(text) and text[i] != "}":
            key, i = decoder.raw_decode(text, i)
            i = skip(i)
            i = skip(i + 1)  # ':'
            start = i
            value, end = decoder.raw_decode(text, start)
            if key == "Statement":
                if isinstance(value, dict):
                    return [(where(start), where(end))]
                out = []
                j = skip(start + 1)
                while j < end - 1 and text[j] != "]":
                    _, e = decoder.raw_decode(text, j)
                    out.append((where(j), where(e)))
                    j = skip(e)
                    if text[j] == ",":
                        j = skip(j + 1)
                return out
            i = skip(end)
            if text[i] == ",":
                i = skip(i + 1)
    except (ValueError, IndexError):
        return []
    return []


# --------------------------------------------------------------------------------------------- the simulation


def evaluate(sidecar: Sidecar, principal: str, account: str, sources: list[Source], boundaries: list[Source],
             actions: list[str], resources: list[str], context: dict[str, Any],
             resource_policy: Any | None) -> list[dict[str, Any]]:
    """One result per (action, resource), in IAM's order: each action, then each resource."""
    names = [f"{i}:{s.id}" for i, s in enumerate(sources)]
    policies = [{"name": n, "policy": s.document} for n, s in zip(names, sources)]
    bounds = [{"name": f"boundary:{i}", "policy": s.document} for i, s in enumerate(boundaries)]
    cases = []
    for action in actions:
        for resource in resources:
            case = {"policies": policies, "boundaries": bounds, "principal": principal, "account": account,
                    "action": action, "resource": resource, "context": context}
            if resource_policy is not None:
                case["resourcePolicy"] = resource_policy
            cases.append(case)
    results = sidecar.evaluate(cases)
    by_name = dict(zip(names, sources))
    out = []
    for case, result in zip(cases, results):
        matched = []
        for m in result.get("matched", []):
            source = by_name.get(m.get("policy"))
            if source is None:
                continue
            positions = statement_positions(source.text)
            index = m.get("index", -1)
            start, end = positions[index] if 0 <= index < len(positions) else ((1, 1), (1, 1))
            matched.append({"id": source.id, "type": source.type, "start": start, "end": end})
        out.append({"action": case["action"], "resource": case["resource"], "decision": result["decision"],
                    "matched": matched, "missing": result.get("missing", [])})
    return out


def statements_xml(matched: list[dict[str, Any]]) -> str:
    items = "".join(
        f"<member><SourcePolicyId>{escape(m['id'])}</SourcePolicyId>"
        f"<SourcePolicyType>{m['type']}</SourcePolicyType>"
        f"<StartPosition><Line>{m['start'][0]}</Line><Column>{m['start'][1]}</Column></StartPosition>"
        f"<EndPosition><Line>{m['end'][0]}</Line><Column>{m['end'][1]}</Column></EndPosition></member>"
        for m in matched)
    return f"<MatchedStatements>{items}</MatchedStatements>"


def missing_xml(keys: list[str]) -> str:
    return "<MissingContextValues>" + "".join(f"<member>{escape(k)}</member>" for k in keys) + "</MissingContextValues>"


def result_xml(r: dict[str, Any], specific: bool) -> str:
    body = (f"<EvalActionName>{escape(r['action'])}</EvalActionName>"
            f"<EvalResourceName>{escape(r['resource'])}</EvalResourceName>"
            f"<EvalDecision>{r['decision']}</EvalDecision>"
            + statements_xml(r["matched"]) + missing_xml(r["missing"]))
    if specific:
        # With ResourceArns, IAM puts each resource's result in ResourceSpecificResults.
        body += ("<ResourceSpecificResults><member>"
                 f"<EvalResourceName>{escape(r['resource'])}</EvalResourceName>"
                 f"<EvalResourceDecision>{r['decision']}</EvalResourceDecision>"
                 + statements_xml(r["matched"]) + missing_xml(r["missing"])
                 + "</member></ResourceSpecificResults>")
    body += "<OrganizationsDecisionDetail><AllowedByOrganizations>true</AllowedByOrganizations></OrganizationsDecisionDetail>"
    return f"<member>{body}</member>"


def page_marker(fingerprint: str, start: int) -> str:
    return base64.urlsafe_b64encode(f"{fingerprint}:{start}".encode()).decode()


def page_start(marker: str | None, fingerprint: str) -> int:
    if not marker:
        return 0
    try:
        fp, start = base64.urlsafe_b64decode(marker.encode()).decode().rsplit(":", 1)
        if fp == fingerprint:
            return int(start)
    except (ValueError, UnicodeDecodeError):
        pass
    raise IamError(400, "InvalidInput", "Invalid Marker: it does not belong to this request.")


def respond(sidecar: Sidecar, action: str, params: dict[str, str], environ: dict[str, Any], access_key: str | None,
            region: str, moto_lock: Any) -> bytes:
    """The XML body of a successful simulation, or raises IamError."""
    actions = members(params, "ActionNames")
    if not actions:
        raise IamError(400, "ValidationError", "1 validation error detected: Value null at 'actionNames' failed "
                                               "to satisfy constraint: Member must not be null")
    resources = members(params, "ResourceArns")
    specific = bool(resources)
    resources = resources or ["*"]
    context = context_entries(params)
    try:
        max_items = int(params.get("MaxItems", DEFAULT_MAX_ITEMS))
    except ValueError:
        raise IamError(400, "ValidationError", "MaxItems must be a number")
    if not 1 <= max_items <= 1000:
        raise IamError(400, "ValidationError", f"1 validation error detected: Value '{max_items}' at 'maxItems' "
                                               "failed to satisfy constraint: Member must have value between 1 and 1000")
    resource_policy = parse_document(params["ResourcePolicy"]) if params.get("ResourcePolicy") else None
    inputs = [Source(f"PolicyInputList.{i + 1}", "none", text)
              for i, text in enumerate(members(params, "PolicyInputList"))]
    boundary_inputs = [Source(f"PermissionsBoundaryPolicyInputList.{i + 1}", "none", text)
                       for i, text in enumerate(members(params, "PermissionsBoundaryPolicyInputList"))]

    with moto_lock:  # moto's state is read under the same lock as every request moto handles
        caller = None
        if enforcement_on():
            if not access_key:
                raise IamError(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
            caller = caller_policies(environ, access_key, region)
        else:
            count_unauthenticated_request()
        if action == "SimulatePrincipalPolicy":
            principal = params.get("PolicySourceArn", "")
            if not principal:
                raise IamError(400, "ValidationError", "PolicySourceArn is required")
            sources, boundaries = principal_policies(principal)
            account = principal.split(":")[4]
        else:
            principal = params.get("CallerArn") or "arn:aws:iam::123456789012:user/simulated-caller"
            sources, boundaries = [], []
            account = principal.split(":")[4] if principal.count(":") >= 5 else "123456789012"
            if not inputs:
                raise IamError(400, "ValidationError", "PolicyInputList is required")

    if caller is not None:
        caller_arn, caller_sources = caller
        needed = "iam:SimulatePrincipalPolicy" if action == "SimulatePrincipalPolicy" else "iam:SimulateCustomPolicy"
        on = principal if action == "SimulatePrincipalPolicy" else "*"
        verdict = evaluate(sidecar, caller_arn, caller_arn.split(":")[4], caller_sources, [], [needed], [on], {}, None)
        if verdict[0]["decision"] != "allowed":
            raise IamError(403, "AccessDenied", f"User: {caller_arn} is not authorized to perform: {needed} on "
                                                f"resource: {on}")

    results = evaluate(sidecar, principal, account, sources + inputs, boundaries + boundary_inputs, actions,
                       resources, context, resource_policy)
    request = sorted((k, v) for k, v in params.items() if k != "Marker")
    fingerprint = hashlib.sha256(json.dumps([action, request]).encode()).hexdigest()[:16]
    start = page_start(params.get("Marker"), fingerprint)
    page = results[start:start + max_items]
    truncated = start + max_items < len(results)
    body = "".join(result_xml(r, specific) for r in page)
    marker = f"<Marker>{page_marker(fingerprint, start + max_items)}</Marker>" if truncated else ""
    return (f'<{action}Response xmlns="{NAMESPACE}"><{action}Result>'
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
            f"<EvaluationResults>{body}</EvaluationResults>{marker}"
            f"</{action}Result><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            f"</{action}Response>").encode()


def error_body(e: IamError) -> bytes:
    kind = "Sender" if e.sender else "Receiver"
    return (f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{kind}</Type><Code>{e.code}</Code>'
            f"<Message>{escape(e.message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
            f"</ErrorResponse>").encode()


STATUS_TEXT = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error"}


def handle(sidecar: Sidecar, action: str, environ: dict[str, Any], body: bytes, access_key: str | None,
           moto_lock: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body of the answer to a simulation request. Raises SimulatorUnavailable when the
    node package is not there (the caller lets moto answer instead)."""
    region = "us-east-1"
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if "/aws4_request" in auth:
        try:
            region = auth.split("Credential=", 1)[1].split("/")[2]
        except IndexError:
            pass
    params = form(body, environ.get("QUERY_STRING", ""))
    try:
        status, payload = 200, respond(sidecar, action, params, environ, access_key, region, moto_lock)
    except IamError as e:
        status, payload = e.status, error_body(e)
    headers = [("Content-Type", "text/xml"), ("Content-Length", str(len(payload))),
               ("x-amzn-RequestId", str(uuid.uuid4()))]
    return f"{status} {STATUS_TEXT.get(status, 'Error')}", headers, payload
