"""Real AWS's consistency and concurrency for the emulator (`tools/emulator.py --realism`).

moto is immediately consistent and never refuses a write for timing reasons. Real IAM and EC2 do, and every
tool that talks to them has to cope. With --realism the emulator adds, on top of moto:

* IAM read-after-write lag (--iam-lag, default 2 s). Before a write is handed to moto, the reads that describe
  what it changes are answered by moto and kept; for the window after the write, those reads are answered
  with the kept answers: the state from before the write. So a role, instance profile or policy read by name
  right after its create answers NoSuchEntity, a relationship (an attachment, a profile's role, a policy's
  default version, a trust document) reads as it was before the write, and something just deleted still
  reads as there. Source: IAM user guide, "Troubleshoot IAM: changes that I make are not always immediately
  visible" (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency);
  terraform-provider-aws internal/service/iam/role.go (RetryWhenNewResourceNotFound on its reads).
* EC2's view of instance profiles (--ec2-lag, default 8 s). AssociateIamInstanceProfile,
  ReplaceIamInstanceProfileAssociation and RunInstances naming a profile created less than the window ago
  answer InvalidParameterValue "Value (NAME) for parameter iamInstanceProfile.name is invalid. Invalid IAM
  Instance Profile name" (".arn ... Invalid IAM Instance Profile ARN" for an ARN); naming a profile that was
  given its role less than the window ago, `IAM Instance Profile "ARN" has no associated IAM Roles`. Source:
  terraform-provider-aws internal/service/ec2/ec2_instance.go (retries both on InvalidParameterValue).
* ConcurrentModification (--concurrent-modification; HTTP 409) for a write to an IAM entity while another
  write to the same entity is in flight. Every write holds its entity for --write-hold seconds (default
  0.2) before moto sees it, so concurrent writes to one entity meet reliably. Error code, status and text:
  botocore's IAM model (ConcurrentModificationException); AWS announced it for AttachRolePolicy/
  AttachUserPolicy (terraform-provider-aws#34371), and terraform-provider-aws
  internal/service/iam/role_policy_attachment.go retries it.
* DeleteConflict (HTTP 409) for DeleteRole, DeletePolicy and DeleteInstanceProfile within --delete-conflict
  seconds (default: the IAM lag) after the last detach/remove on that entity: IAM still sees the link.
  Messages: IAM's own ("Cannot delete entity, must detach all policies first.", ...). Source:
  terraform-provider-aws internal/service/iam/role.go (DeleteRole retries DeleteConflict for 2 minutes).
* IAM's preconditions of a delete that moto does not check: DeletePolicy of a policy still attached to a user,
  group or role, or with versions beside its default, answers DeleteConflict (HTTP 409), as the IAM API reference
  says: "Before you can delete a managed policy, you must first detach the policy from all users, groups, and
  roles that it is attached to. In addition, you must delete all the policy's versions."
  (https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeletePolicy.html). moto itself already refuses
  DeleteRole while the role has attached or inline policies or is in an instance profile, and
  DeleteInstanceProfile while it holds a role, with IAM's messages (API_DeleteRole.html,
  API_DeleteInstanceProfile.html). So a destroy that deletes in the wrong order fails a test. With --realism
  (on whenever realism is).
* The services' own late view of a role (--service-lag, default 8 s): for the window after a role's CreateRole or
  UpdateAssumeRolePolicy, the services that assume it refuse it as AWS does while they cannot assume it yet.
  Lambda CreateFunction and UpdateFunctionConfiguration naming it answer InvalidParameterValueException (HTTP 400)
  "The role defined for the function cannot be assumed by Lambda." (terraform-provider-aws
  internal/service/lambda/function.go retries that message; aws/aws-cli#7700). Step Functions CreateStateMachine
  and UpdateStateMachine answer AccessDeniedException (HTTP 400) "Neither the global service principal
  states.amazonaws.com, nor the regional one is authorized to assume the provided role."
  (hashicorp/terraform-provider-aws#7893; internal/service/sfn/state_machine.go retries AccessDeniedException on
  create). Batch CreateComputeEnvironment naming it as serviceRole succeeds, and the compute environment goes
  INVALID, statusReason "CLIENT_ERROR - User: batch.amazonaws.com is not authorized to perform: sts:AssumeRole on
  resource: ROLE_ARN (Service: AWSSecurityTokenService; Status Code: 403; Error Code: AccessDenied; ...)"
  (quoted in hashicorp/terraform-provider-aws#21281; internal/service/batch/compute_environment.go retries nothing
  on create, it waits for CREATING -> VALID and reports an INVALID one's statusReason). It stays INVALID: Batch
  does not repair it by itself (Batch user guide, Troubleshooting, "INVALID compute environment",
  https://docs.aws.amazon.com/batch/latest/userguide/troubleshooting.html); delete it and create it again.
  The same when its service role is deleted under it: a VALID compute environment whose serviceRole no longer
  exists reads INVALID with that statusReason (terraform-provider-aws PR #21281, #16417: such an environment can
  then no longer be deleted), which moto never does.
* Batch's status transitions (--batch-transition, default 1 s): a new compute environment reads CREATING for that
  long before VALID (or INVALID), and a deleted one reads DELETING (state DISABLED) before it is gone, as
  terraform-provider-aws internal/service/batch/compute_environment.go waits for (waitComputeEnvironmentCreated,
  waitComputeEnvironmentDeleted). moto makes them VALID at once and forgets them at once. Batch finishes a delete
  with the service role: one whose serviceRole is gone when its DELETING ends reads INVALID from then on and is
  never gone (terraform-provider-aws PR #21281: such an environment can no longer be deleted).
* Instance metadata options taking effect (--metadata-transition, default 2 s): ModifyInstanceMetadataOptions on a
  running instance answers state `pending`, and DescribeInstances shows the new options in state `pending` for the
  window, then `applied`: "When you modify the parameters on a running instance, the API responds with a state of
  pending. After the parameter modifications are successfully applied to the instance, the state of the
  modifications changes from pending to applied in subsequent describe-instances API calls" (EC2 API reference,
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyInstanceMetadataOptions.html). moto applies them at
  once. A stopped instance is left as moto answers (AWS applies its options when it starts).
* Session expiry: credentials from sts:AssumeRole stop working at their expiry (moto never expires them):
  requests signed with them answer ExpiredToken. --session-seconds caps every session (for tests of long
  runs); a DurationSeconds over an hour asked with role-chained credentials is refused, as STS does
  (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html, DurationSeconds).

Each window is the flag's value times a factor in [1 - --lag-jitter, 1] drawn per entity (a role, a policy, an
instance profile, a user) from a hash of --seed and the entity, so a run is deterministic for a seed whatever
the order requests arrive in; the reads a write changed catch up together, when the entity's window ends.

POST /__emulator/control {"settle": true} ends every window at once (a test's arranged drift then reads as
old news, as it would after a while on AWS). Only the request shapes the AWS SDKs send are recognised (query
protocol, first page): others pass through to moto unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlencode

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"

# Botocore's IAM model: ConcurrentModificationException, code ConcurrentModification, HTTP 409, its documentation.
CONCURRENT_MODIFICATION = (
    "The request was rejected because multiple requests to change this object were submitted simultaneously. "
    "Wait a few minutes and submit your request again."
)
# IAM's DeleteConflict messages, by what still holds the entity.
MUST_DETACH = "Cannot delete entity, must detach all policies first."
MUST_DELETE_INLINE = "Cannot delete entity, must delete policies first."
MUST_REMOVE_ROLES = "Cannot delete entity, must remove roles from instance profile first."
POLICY_ATTACHED = "Cannot delete a policy attached to entities."
# Wording unverified (the API reference states the rule, not the message); the code and status are IAM's.
POLICY_HAS_VERSIONS = ("This policy has more than one version. Before you delete a policy, you must delete the "
                       "policy's versions. The default version is deleted with the policy.")
EXPIRED_TOKEN = "The security token included in the request is expired"
# STS AssumeRole, DurationSeconds: role chaining limits a session to one hour.
CHAINING_LIMIT = "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
ONE_HOUR = 3600

# What the services answer while they cannot assume a role (see the module's docstring for the sources).
LAMBDA_CANNOT_ASSUME = "The role defined for the function cannot be assumed by Lambda."
SFN_CANNOT_ASSUME = ("Neither the global service principal states.amazonaws.com, nor the regional one is authorized "
                     "to assume the provided role.")


def batch_cannot_assume(role_arn: str) -> str:
    return (f"CLIENT_ERROR - User: batch.amazonaws.com is not authorized to perform: sts:AssumeRole on resource: "
            f"{role_arn} (Service: AWSSecurityTokenService; Status Code: 403; Error Code: AccessDenied; "
            f"Request ID: {uuid.uuid4()}; Proxy: null)")


LAMBDA_FUNCTIONS = re.compile(r"^/2015-03-31/functions/?$")
LAMBDA_CONFIGURATION = re.compile(r"^/2015-03-31/functions/[^/]+/configuration/?$")

# Parameters that do not select what a read describes.
NOT_SELECTING = {"Action", "Version", "MaxItems"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("realism (tools/realism.py): what real AWS does that moto does not")
    g.add_argument("--realism", action="store_true",
                   help="all of the below at their defaults: IAM read lag, EC2 profile lag, "
                        "ConcurrentModification, DeleteConflict, session expiry")
    g.add_argument("--iam-lag", type=float, default=None, metavar="SECONDS",
                   help="IAM reads answer the state from before a write for this long after it (default 2)")
    g.add_argument("--ec2-lag", type=float, default=None, metavar="SECONDS",
                   help="EC2 refuses a profile this long after it was created or given its role (default 8)")
    g.add_argument("--delete-conflict", type=float, default=None, metavar="SECONDS",
                   help="DeleteRole/DeletePolicy/DeleteInstanceProfile answer DeleteConflict this long after "
                        "the last detach/remove on the entity (default: the IAM lag)")
    g.add_argument("--concurrent-modification", action="store_true",
                   help="a write to an IAM entity while another write to it is in flight answers "
                        "ConcurrentModification")
    g.add_argument("--write-hold", type=float, default=0.2, metavar="SECONDS",
                   help="how long a write holds its entity (with --concurrent-modification; default 0.2)")
    g.add_argument("--lag-jitter", type=float, default=0.5, metavar="F",
                   help="each window is its flag's value times a factor in [1-F, 1], from --seed (default 0.5)")
    g.add_argument("--session-seconds", type=float, default=None, metavar="SECONDS",
                   help="every sts:AssumeRole session expires after at most this long")
    g.add_argument("--service-lag", type=float, default=None, metavar="SECONDS",
                   help="Lambda, Step Functions and Batch cannot assume a role this long after its create or trust "
                        "update (default 8)")
    g.add_argument("--batch-transition", type=float, default=None, metavar="SECONDS",
                   help="a Batch compute environment reads CREATING (and DELETING) this long (default 1)")
    g.add_argument("--metadata-transition", type=float, default=None, metavar="SECONDS",
                   help="a running instance's new metadata options read `pending` this long (default 2)")


@dataclass
class Settings:
    iam_lag: float = 0.0
    ec2_lag: float = 0.0
    delete_conflict: float = 0.0
    concurrent_modification: bool = False
    write_hold: float = 0.2
    lag_jitter: float = 0.5
    session_seconds: float | None = None
    sessions: bool = False
    service_lag: float = 0.0
    batch_transition: float = 0.0
    metadata_transition: float = 0.0
    seed: int = 1

    def enabled(self) -> bool:
        return bool(self.iam_lag or self.ec2_lag or self.delete_conflict or self.concurrent_modification
                    or self.sessions or self.service_lag or self.batch_transition or self.metadata_transition)


def settings_from(args: argparse.Namespace, error: Callable[[str], Any]) -> Settings | None:
    """The realism settings the flags ask for, or None when none is asked for. `error` reports a bad flag."""
    on = args.realism
    iam_lag = args.iam_lag if args.iam_lag is not None else (2.0 if on else 0.0)
    ec2_lag = args.ec2_lag if args.ec2_lag is not None else (8.0 if on else 0.0)
    delete_conflict = args.delete_conflict if args.delete_conflict is not None else (iam_lag if on else 0.0)
    service_lag = args.service_lag if args.service_lag is not None else (8.0 if on else 0.0)
    batch_transition = args.batch_transition if args.batch_transition is not None else (1.0 if on else 0.0)
    metadata_transition = args.metadata_transition if args.metadata_transition is not None else (2.0 if on else 0.0)
    for name, value in (("--iam-lag", iam_lag), ("--ec2-lag", ec2_lag), ("--delete-conflict", delete_conflict),
                        ("--write-hold", args.write_hold), ("--service-lag", service_lag),
                        ("--batch-transition", batch_transition), ("--metadata-transition", metadata_transition)):
        if value < 0:
            error(f"{name} must be >= 0")
    if not 0.0 <= args.lag_jitter < 1.0:
        error("--lag-jitter must be within 0..1 (1 excluded)")
    if args.session_seconds is not None and args.session_seconds <= 0:
        error("--session-seconds must be > 0")
    s = Settings(iam_lag=iam_lag, ec2_lag=ec2_lag, delete_conflict=delete_conflict,
                 concurrent_modification=on or args.concurrent_modification, write_hold=args.write_hold,
                 lag_jitter=args.lag_jitter, session_seconds=args.session_seconds,
                 sessions=on or args.session_seconds is not None, service_lag=service_lag,
                 batch_transition=batch_transition, metadata_transition=metadata_transition, seed=args.seed)
    return s if s.enabled() else None


def describe(s: Settings) -> str:
    parts = []
    if s.iam_lag:
        parts.append(f"IAM read lag {s.iam_lag:g} s")
    if s.ec2_lag:
        parts.append(f"EC2 profile lag {s.ec2_lag:g} s")
    if s.delete_conflict:
        parts.append(f"DeleteConflict {s.delete_conflict:g} s")
    if s.service_lag:
        parts.append(f"service role lag {s.service_lag:g} s")
    if s.batch_transition:
        parts.append(f"Batch transitions {s.batch_transition:g} s")
    if s.metadata_transition:
        parts.append(f"metadata options pending {s.metadata_transition:g} s")
    if s.concurrent_modification:
        parts.append(f"ConcurrentModification (writes hold {s.write_hold:g} s)")
    if s.sessions:
        parts.append("session expiry" + (f" (at most {s.session_seconds:g} s)" if s.session_seconds else ""))
    return ", ".join(parts) + f", jitter {s.lag_jitter:g}, seed {s.seed}"


# --------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------


def query_params(environ: dict[str, Any], body: bytes) -> dict[str, str]:
    """The first value of each parameter of a query-protocol request (form body, or the query string)."""
    params = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    content_type = environ.get("CONTENT_TYPE", "")
    if body and (not content_type or content_type.startswith("application/x-www-form-urlencoded")):
        params.update(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
    return {k: v[0] for k, v in params.items() if v}


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")


def credential(environ: dict[str, Any], params: dict[str, str]) -> tuple[str | None, str]:
    """(access key, region) from the SigV4 Authorization header or a presigned URL's X-Amz-Credential."""
    m = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if m is None and params.get("X-Amz-Credential"):
        m = CREDENTIAL_RE.search("Credential=" + params["X-Amz-Credential"])
    return (m.group(1), m.group(2)) if m else (None, "us-east-1")


Read = tuple[str, tuple[tuple[str, str], ...]]  # (Action, selecting parameters, sorted)


def read(action: str, **params: str) -> Read:
    return action, tuple(sorted(params.items()))


def selecting(action: str, params: dict[str, str]) -> Read:
    return action, tuple(sorted((k, v) for k, v in params.items() if k not in NOT_SELECTING))


@dataclass
class Effects:
    """What one IAM write changes: the reads that describe it, what it holds, what it leaves."""
    reads: list[Read] = field(default_factory=list)
    # The entity a concurrent write must not touch meanwhile, e.g. ("role", "R").
    entity: tuple[str, str] | None = None
    # Entities a delete of which now conflicts, with the message IAM gives.
    links_removed: list[tuple[tuple[str, str], str]] = field(default_factory=list)
    # EC2: ("created" | "role", profile name, profile ARN).
    profile_event: tuple[str, str, str] | None = None
    # Versions of a policy whose GetPolicyVersion reads are kept too (read from its kept ListPolicyVersions).
    policy_versions_of: str | None = None
    # A role the services (Lambda, Step Functions, Batch) cannot assume for a while: created, or its trust changed.
    service_role: str | None = None


def role_reads(name: str) -> list[Read]:
    return [read("GetRole", RoleName=name), read("ListAttachedRolePolicies", RoleName=name),
            read("ListRolePolicies", RoleName=name), read("ListInstanceProfilesForRole", RoleName=name)]


def policy_reads(arn: str) -> list[Read]:
    return [read("GetPolicy", PolicyArn=arn), read("ListPolicyVersions", PolicyArn=arn),
            read("ListEntitiesForPolicy", PolicyArn=arn)]


SERVICE_LINKED = read("ListRoles", PathPrefix="/aws-service-role/")


def iam_effects(action: str, p: dict[str, str], account: str, region: str) -> Effects | None:
    """What an IAM write changes, or None for an action realism does not know (passed through as is)."""
    role, profile, user, group = p.get("RoleName"), p.get("InstanceProfileName"), p.get("UserName"), p.get("GroupName")
    arn = p.get("PolicyArn")
    partition = partition_of(region)
    e = Effects()
    if action in ("CreateRole", "DeleteRole") and role:
        e.reads = role_reads(role)
        if p.get("Path", "/").startswith("/aws-service-role/") or action == "DeleteRole":
            e.reads.append(SERVICE_LINKED)
        e.entity = ("role", role)
        if action == "CreateRole":
            e.service_role = role
    elif action in ("UpdateAssumeRolePolicy", "UpdateRole", "UpdateRoleDescription", "TagRole", "UntagRole",
                    "PutRolePermissionsBoundary", "DeleteRolePermissionsBoundary") and role:
        e.reads, e.entity = [read("GetRole", RoleName=role)], ("role", role)
        if action == "UpdateAssumeRolePolicy":
            e.service_role = role
    elif action in ("AttachRolePolicy", "DetachRolePolicy") and role and arn:
        e.reads = [read("ListAttachedRolePolicies", RoleName=role), read("ListEntitiesForPolicy", PolicyArn=arn)]
        e.entity = ("role", role)
        if action == "DetachRolePolicy":
            e.links_removed = [(("role", role), MUST_DETACH), (("policy", arn), POLICY_ATTACHED)]
    elif action in ("PutRolePolicy", "DeleteRolePolicy") and role:
        e.reads = [read("ListRolePolicies", RoleName=role)]
        if p.get("PolicyName"):
            e.reads.append(read("GetRolePolicy", RoleName=role, PolicyName=p["PolicyName"]))
        e.entity = ("role", role)
        if action == "DeleteRolePolicy":
            e.links_removed = [(("role", role), MUST_DELETE_INLINE)]
    elif action in ("CreateInstanceProfile", "DeleteInstanceProfile", "TagInstanceProfile",
                    "UntagInstanceProfile") and profile:
        e.reads, e.entity = [read("GetInstanceProfile", InstanceProfileName=profile)], ("instance-profile", profile)
        if action == "CreateInstanceProfile":
            e.profile_event = ("created", profile, profile_arn(partition, account, p.get("Path", "/"), profile))
    elif action in ("AddRoleToInstanceProfile", "RemoveRoleFromInstanceProfile") and profile and role:
        e.reads = [read("GetInstanceProfile", InstanceProfileName=profile),
                   read("ListInstanceProfilesForRole", RoleName=role)]
        e.entity = ("instance-profile", profile)
        if action == "AddRoleToInstanceProfile":
            e.profile_event = ("role", profile, "")
        else:
            e.links_removed = [(("role", role), MUST_REMOVE_ROLES), (("instance-profile", profile), MUST_REMOVE_ROLES)]
    elif action == "CreatePolicy" and p.get("PolicyName"):
        arn = f"arn:{partition}:iam::{account}:policy{p.get('Path', '/')}{p['PolicyName']}"
        e.reads = policy_reads(arn) + [read("GetPolicyVersion", PolicyArn=arn, VersionId="v1")]
        e.entity = ("policy", arn)
    elif action in ("DeletePolicy", "CreatePolicyVersion", "DeletePolicyVersion", "SetDefaultPolicyVersion",
                    "TagPolicy", "UntagPolicy") and arn:
        e.reads, e.entity = policy_reads(arn), ("policy", arn)
        if action in ("DeletePolicy", "DeletePolicyVersion"):
            e.policy_versions_of = arn
    elif action in ("AttachUserPolicy", "DetachUserPolicy") and user and arn:
        e.reads = [read("ListAttachedUserPolicies", UserName=user), read("ListEntitiesForPolicy", PolicyArn=arn)]
        e.entity = ("user", user)
        if action == "DetachUserPolicy":
            e.links_removed = [(("policy", arn), POLICY_ATTACHED)]
    elif action in ("AttachGroupPolicy", "DetachGroupPolicy") and group and arn:
        e.reads = [read("ListAttachedGroupPolicies", GroupName=group), read("ListEntitiesForPolicy", PolicyArn=arn)]
        e.entity = ("group", group)
        if action == "DetachGroupPolicy":
            e.links_removed = [(("policy", arn), POLICY_ATTACHED)]
    elif action == "CreateServiceLinkedRole" and p.get("AWSServiceName"):
        e.reads, e.entity = [SERVICE_LINKED], ("service-linked-role", p["AWSServiceName"])
    elif action == "DeleteServiceLinkedRole" and role:
        e.reads, e.entity = [read("GetRole", RoleName=role), SERVICE_LINKED], ("role", role)
    else:
        return None
    return e


def profile_arn(partition: str, account: str, path: str, name: str) -> str:
    return f"arn:{partition}:iam::{account}:instance-profile{path}{name}"


# What a delete is refused for while a link it had is still seen.
DELETES = {"DeleteRole": "role", "DeletePolicy": "policy", "DeleteInstanceProfile": "instance-profile"}


def delete_target(action: str, p: dict[str, str]) -> tuple[str, str] | None:
    kind = DELETES.get(action)
    name = {"role": p.get("RoleName"), "policy": p.get("PolicyArn"),
            "instance-profile": p.get("InstanceProfileName")}.get(kind or "")
    return (kind, name) if kind and name else None


# --------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    kind: str  # what realism did, for the request log


def query_error(status: str, code: str, message: str, kind: str, namespace: str | None = None) -> Answer:
    """An error in the awsQuery shape (IAM, STS): <ErrorResponse><Error><Type>Sender</Type>..."""
    rid = str(uuid.uuid4())
    ns = f' xmlns="{namespace}"' if namespace else ""
    body = (f"<ErrorResponse{ns}><Error><Type>Sender</Type><Code>{code}</Code><Message>{xml_escape(message)}"
            f"</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>").encode()
    return Answer(status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid),
                           ("Content-Length", str(len(body)))], body, kind)


def ec2_error(code: str, message: str, kind: str) -> Answer:
    """An error in the ec2Query shape: <Response><Errors><Error>...</Error></Errors><RequestID>."""
    rid = str(uuid.uuid4())
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code><Message>'
            f"{xml_escape(message)}</Message></Error></Errors><RequestID>{rid}</RequestID></Response>").encode()
    return Answer("400 Bad Request", [("Content-Type", "text/xml;charset=UTF-8"), ("Content-Length", str(len(body)))],
                  body, kind)


def json_error(status: str, code: str, message: str, kind: str, rest: bool) -> Answer:
    """An error in the restJson shape (Lambda: x-amzn-ErrorType, {"Type": "User", "message": ...}) or the awsJson 1.0
    shape (Step Functions: {"__type": CODE, "message": ...})."""
    rid = str(uuid.uuid4())
    doc = {"Type": "User", "message": message} if rest else {"__type": code, "message": message}
    body = json.dumps(doc).encode()
    content_type = "application/json" if rest else "application/x-amz-json-1.0"
    return Answer(status, [("Content-Type", content_type), ("x-amzn-ErrorType", code), ("x-amzn-RequestId", rid),
                           ("Content-Length", str(len(body)))], body, kind)


def xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


@dataclass
class Kept:
    """A read's answer from before a write, served until `until`."""
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    until: float


# --------------------------------------------------------------------------------------
# The realism layer
# --------------------------------------------------------------------------------------


class Ticket:
    """What `Realism.admit` decided for one request: an answer instead of moto's, or a claim to release."""

    def __init__(self, realism: "Realism", answer: Answer | None, claim: tuple | None) -> None:
        self.answer = answer
        self._realism, self._claim = realism, claim

    def close(self) -> None:
        if self._claim is not None:
            self._realism._release(self._claim)
            self._claim = None


class Realism:
    """Two parts: `admit` runs before a request waits for moto (it may answer ConcurrentModification, or hold a
    write's entity for --write-hold), and `wrap(app)` is the WSGI app moto's requests go through, one at a time
    (it serves kept reads, refuses deletes and EC2 associations, and keeps reads before a write)."""

    def __init__(self, settings: Settings, log: Callable[[str], None] | None = None) -> None:
        self.s = settings
        self.log = log or (lambda _m: None)
        self.lock = threading.Lock()  # guards everything below; never held while moto runs
        self.kept: dict[tuple[str, Read], Kept] = {}
        self.conflicts: dict[tuple[str, tuple[str, str]], tuple[float, str]] = {}
        # (account, profile name) -> (event, when, arn): what EC2 does not know yet.
        self.profiles: dict[tuple[str, str], dict[str, float]] = {}
        self.profile_arns: dict[tuple[str, str], str] = {}
        self.in_flight: dict[tuple[str, tuple[str, str]], int] = {}
        self.sessions: dict[str, float] = {}  # assumed-role access key -> expiry (time.time())
        # (account, role name) -> when Lambda, Step Functions and Batch can assume the role (--service-lag).
        self.service_roles: dict[tuple[str, str], float] = {}
        # (account, region, compute environment ARN) -> (CREATING until, INVALID statusReason or None).
        self.compute_environments: dict[tuple[str, str, str], tuple[float, str | None]] = {}
        # (account, region, compute environment ARN) -> (DELETING until, its description): deleted, not gone yet.
        self.deleting: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}
        # (account, region, instance id) -> when its new metadata options read `applied` (--metadata-transition).
        self.metadata_pending: dict[tuple[str, str, str], float] = {}
        self.accounts: dict[str, str] = {}
        self.app: Callable | None = None

    # ---- windows -------------------------------------------------------------------

    def factor(self, account: str, what: object) -> float:
        """1 - jitter·u, u in [0, 1) from a hash of the seed and the entity: deterministic for a seed."""
        if not self.s.lag_jitter:
            return 1.0
        digest = hashlib.sha256(f"{self.s.seed}|{account}|{what!r}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        return 1.0 - self.s.lag_jitter * u

    def settle(self) -> None:
        """End every window now (sessions keep their expiry)."""
        with self.lock:
            self.kept.clear()
            self.conflicts.clear()
            self.profiles.clear()
            self.service_roles.clear()
            self.deleting.clear()
            self.metadata_pending = {k: 0.0 for k in self.metadata_pending}
            # An INVALID compute environment stays INVALID (Batch does not repair it): only CREATING ends.
            self.compute_environments = {k: (0.0, reason) for k, (_, reason) in self.compute_environments.items()}

    def account_of(self, access_key: str | None) -> str:
        if not access_key:
            return "123456789012"
        with self.lock:
            known = self.accounts.get(access_key)
        if known is None:
            from moto.iam.models import get_account_id_from  # moto is imported by the emulator first
            known = get_account_id_from(access_key)
            with self.lock:
                self.accounts[access_key] = known
        return known

    # ---- before moto: concurrent writes ---------------------------------------------

    def admit(self, environ: dict[str, Any], body: bytes, service: str | None, action: str | None,
              write: bool) -> Ticket:
        # AWS checks a session's expiry when the request arrives, not when moto gets to it.
        environ["emulator.arrived"] = time.time()
        if not (self.s.concurrent_modification and write and service == "iam" and action):
            return Ticket(self, None, None)
        params = query_params(environ, body)
        key, region = credential(environ, params)
        account = self.account_of(key)
        effects = iam_effects(action, params, account, region)
        if effects is None or effects.entity is None:
            return Ticket(self, None, None)
        claim = (account, effects.entity)
        with self.lock:
            busy = self.in_flight.get(claim, 0) > 0
            if not busy:
                self.in_flight[claim] = 1
        if busy:
            return Ticket(self, query_error("409 Conflict", "ConcurrentModification", CONCURRENT_MODIFICATION,
                                            "concurrent_modification", IAM_NS), None)
        ticket = Ticket(self, None, claim)
        if self.s.write_hold > 0:
            time.sleep(self.s.write_hold)  # in flight: the entity is held, outside moto's lock
        return ticket

    def _release(self, claim: tuple) -> None:
        with self.lock:
            self.in_flight.pop(claim, None)

    # ---- inside moto's lock -----------------------------------------------------------

    def wrap(self, app: Callable) -> Callable:
        self.app = app
        return self.wsgi

    def wsgi(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """moto's WSGI app with realism around it. Called one request at a time (the emulator's moto lock)."""
        stream = environ.get("wsgi.input")
        body = stream.read() if stream is not None else b""
        environ["wsgi.input"] = io.BytesIO(body)
        if self.deleting:
            self.end_deletes(time.time())
        service = service_of(environ)
        if service in ("lambda", "states", "batch") and (self.s.service_lag or self.s.batch_transition):
            return self.service_request(environ, start_response, service, body)
        params = query_params(environ, body)
        action = params.get("Action")
        if action is None or service not in ("iam", "ec2", "sts"):
            return self.app(environ, start_response)
        key, region = credential(environ, params)
        now = time.time()

        answer = self.expired(key, environ.get("emulator.arrived", now), service)
        if answer is None:
            account = self.account_of(key)
            if service == "iam":
                answer = self.iam_early(account, action, params, now)
            elif service == "ec2":
                answer = self.ec2_early(account, action, params, now)
            elif service == "sts" and action == "AssumeRole":
                answer = self.chaining(key, params)
            if answer is None:
                return self.forward(environ, start_response, account, region, service, action, params, body, now)
        environ["emulator.realism"] = answer.kind
        start_response(answer.status, answer.headers)
        return [answer.body]

    def end_deletes(self, now: float) -> None:
        """The compute environments whose DELETING has ended by `now` are gone, but one whose service role is gone:
        Batch finishes a delete with the service role, so that one reads INVALID from then on (terraform-provider-aws
        PR #21281). Run before each request, so a role deleted by a later request never counts."""
        with self.lock:
            ended = [(k, e) for k, (until, e) in self.deleting.items() if now >= until and e.get("status") == "DELETING"]
        for k, entry in ended:
            role = entry.get("serviceRole")
            if isinstance(role, str) and not self.role_exists(k[0], role):
                entry["status"], entry["statusReason"] = "INVALID", batch_cannot_assume(role)
            else:
                with self.lock:
                    self.deleting.pop(k, None)

    def expired(self, key: str | None, now: float, service: str) -> Answer | None:
        if not self.s.sessions or key is None:
            return None
        with self.lock:
            expiry = self.sessions.get(key)
        if expiry is None or now < expiry:
            return None
        if service == "ec2":
            return ec2_error("RequestExpired", "Request has expired.", "expired_token")
        return query_error("400 Bad Request", "ExpiredToken", EXPIRED_TOKEN, "expired_token")

    def chaining(self, key: str | None, params: dict[str, str]) -> Answer | None:
        if not self.s.sessions:
            return None
        with self.lock:
            chained = key in self.sessions
        asked = int(params.get("DurationSeconds", ONE_HOUR))
        if chained and asked > ONE_HOUR:
            return query_error("400 Bad Request", "ValidationError", CHAINING_LIMIT, "session_chaining_limit")
        return None

    def iam_early(self, account: str, action: str, params: dict[str, str], now: float) -> Answer | None:
        """A kept read, or a delete IAM refuses because it still sees a link."""
        if action.startswith(("Get", "List")):
            if "Marker" in params:
                return None
            with self.lock:
                kept = self.kept.get((account, selecting(action, params)))
            if kept is None or now >= kept.until:
                return None
            return Answer(kept.status, kept.headers, kept.body, "stale_read")
        target = delete_target(action, params)
        if target is not None:
            with self.lock:
                conflict = self.conflicts.get((account, target))
            if conflict is not None and now < conflict[0]:
                return query_error("409 Conflict", "DeleteConflict", conflict[1], "delete_conflict", IAM_NS)
        if action == "DeletePolicy":
            refused = self.policy_in_use(account, params.get("PolicyArn", ""))
            if refused is not None:
                return query_error("409 Conflict", "DeleteConflict", refused, "delete_precondition", IAM_NS)
        return None

    def policy_in_use(self, account: str, arn: str) -> str | None:
        """Why IAM would refuse DeletePolicy of `arn` now (attached, or other versions), read from moto's state."""
        from moto.iam.models import iam_backends  # moto is imported by the emulator first
        partition = arn.split(":")[1] if arn.count(":") >= 5 else "aws"
        try:
            policy = iam_backends[account][partition].managed_policies.get(arn)
        except KeyError:
            return None
        if policy is None:
            return None
        if policy.attachment_count > 0:
            return POLICY_ATTACHED
        if len(policy.versions) > 1:
            return POLICY_HAS_VERSIONS
        return None

    def ec2_early(self, account: str, action: str, params: dict[str, str], now: float) -> Answer | None:
        if action not in ("AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation", "RunInstances"):
            return None
        name, arn = params.get("IamInstanceProfile.Name"), params.get("IamInstanceProfile.Arn")
        if arn and not name:
            name = arn.rsplit("/", 1)[-1]
        if not name:
            return None
        with self.lock:
            events = dict(self.profiles.get((account, name), {}))
            known_arn = self.profile_arns.get((account, name), arn or "")
        if now < events.get("created", 0.0):
            if arn:
                return ec2_error("InvalidParameterValue", f"Value ({arn}) for parameter iamInstanceProfile.arn is "
                                 "invalid. Invalid IAM Instance Profile ARN", "ec2_not_propagated")
            return ec2_error("InvalidParameterValue", f"Value ({name}) for parameter iamInstanceProfile.name is "
                             "invalid. Invalid IAM Instance Profile name", "ec2_not_propagated")
        if now < events.get("role", 0.0):
            return ec2_error("InvalidParameterValue",
                             f'IAM Instance Profile "{known_arn}" has no associated IAM Roles', "ec2_not_propagated")
        return None

    def forward(self, environ, start_response, account: str, region: str, service: str, action: str,
                params: dict[str, str], body: bytes, now: float) -> Iterable[bytes]:
        effects = None
        if service == "iam" and not action.startswith(("Get", "List")):
            effects = iam_effects(action, params, account, region)
        before = self.keep_reads(environ, account, effects) if effects is not None and self.s.iam_lag else {}
        if service == "ec2" and action == "DescribeInstances" and self.s.metadata_transition:
            asked = {v for k, v in params.items() if k.startswith("InstanceId.")}
            if self.metadata_applied(account, region, asked, now):
                environ["emulator.realism"] = "metadata_pending"
        status, headers, data = self.call(environ)
        ok = status[:1] == "2"
        if ok and service == "ec2" and action == "ModifyInstanceMetadataOptions" and self.s.metadata_transition:
            data = self.metadata_modified(environ, account, region, params.get("InstanceId", ""), data)
            headers = [(k, str(len(data)) if k.lower() == "content-length" else v) for k, v in headers]
        if ok and effects is not None:
            self.record(account, effects, before)
        if ok and service == "sts" and action == "AssumeRole" and self.s.sessions:
            data = self.session_started(data, params)
            headers = [(k, str(len(data)) if k.lower() == "content-length" else v) for k, v in headers]
        start_response(status, headers)
        return [data]

    def keep_reads(self, environ, account: str, effects: Effects) -> dict[Read, Kept]:
        """moto's answers, now, to the reads the write will change (those not already kept: the older stays)."""
        kept: dict[Read, Kept] = {}
        now = time.time()
        wanted = list(effects.reads)
        for r in list(wanted):
            with self.lock:
                live = self.kept.get((account, r))
            if live is not None and now < live.until:
                wanted.remove(r)
        answers = self.ask_moto(environ, wanted)
        kept.update(answers)
        if effects.policy_versions_of:
            versions = kept.get(read("ListPolicyVersions", PolicyArn=effects.policy_versions_of))
            ids = re.findall(rb"<VersionId>([^<]+)</VersionId>", versions.body) if versions else []
            kept.update(self.ask_moto(environ, [read("GetPolicyVersion", PolicyArn=effects.policy_versions_of,
                                                     VersionId=v.decode()) for v in ids]))
        return kept

    def ask_moto(self, environ, reads: list[Read]) -> dict[Read, Kept]:
        """Synthetic reads, made as the request's own caller (same account), uncounted and unauthorised."""
        from moto.core.authorization import disable_iam_authentication

        out: dict[Read, Kept] = {}
        for action, params in reads:
            form = urlencode([("Action", action), ("Version", "2010-05-08"), *params]).encode()
            env = {k: v for k, v in environ.items() if not k.startswith("emulator.")}
            env.update({"REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": "",
                        "CONTENT_TYPE": "application/x-www-form-urlencoded; charset=utf-8",
                        "CONTENT_LENGTH": str(len(form)), "wsgi.input": io.BytesIO(form)})
            env.pop("HTTP_X_AMZ_TARGET", None)
            captured: list[Any] = []

            def start(s, headers, exc_info=None):
                captured.extend([s, list(headers)])
                return lambda _data: None

            with disable_iam_authentication():
                result = self.app(env, start)
                data = b"".join(result)
                if hasattr(result, "close"):
                    result.close()
            if captured:
                out[(action, params)] = Kept(captured[0], captured[1], data, 0.0)
        return out

    def record(self, account: str, effects: Effects, before: dict[Read, Kept]) -> None:
        now = time.time()
        # One window per entity: the reads of what one write changed catch up together.
        until = now + self.s.iam_lag * self.factor(account, effects.entity)
        with self.lock:
            for r, k in before.items():
                k.until = until
                self.kept[(account, r)] = k
            for r in effects.reads:  # already kept from an earlier write: the window starts again
                live = self.kept.get((account, r))
                if live is not None and r not in before:
                    live.until = max(live.until, until)
            if self.s.delete_conflict:
                for entity, message in effects.links_removed:
                    until = now + self.s.delete_conflict * self.factor(account, ("delete", entity))
                    self.conflicts[(account, entity)] = (until, message)
            if self.s.service_lag and effects.service_role is not None:
                self.service_roles[(account, effects.service_role)] = (
                    now + self.s.service_lag * self.factor(account, ("service", effects.service_role)))
            if self.s.ec2_lag and effects.profile_event is not None:
                event, name, arn = effects.profile_event
                self.profiles.setdefault((account, name), {})[event] = (
                    now + self.s.ec2_lag * self.factor(account, ("ec2", name)))
                if arn:
                    self.profile_arns[(account, name)] = arn

    def session_started(self, body: bytes, params: dict[str, str]) -> bytes:
        """Note the session's expiry (capped by --session-seconds) and tell the client the same."""
        m = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", body)
        if m is None:
            return body
        seconds = float(params.get("DurationSeconds", ONE_HOUR))
        if self.s.session_seconds is not None:
            seconds = min(seconds, self.s.session_seconds)
        expiry = time.time() + seconds
        with self.lock:
            self.sessions[m.group(1).decode()] = expiry
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expiry)) + f".{int(expiry % 1 * 1000):03d}Z"
        return re.sub(rb"<Expiration>[^<]*</Expiration>", f"<Expiration>{stamp}</Expiration>".encode(), body)

    # ---- EC2 instance metadata options: pending, then applied ----------------------------------------------

    @staticmethod
    def moto_instance(account: str, region: str, instance_id: str):
        from moto.ec2.models import ec2_backends  # moto is imported by the emulator first
        try:
            return ec2_backends[account][region].get_instance(instance_id)
        except Exception:  # noqa: BLE001 - an instance moto does not know: moto's own answer says so
            return None

    def metadata_modified(self, environ, account: str, region: str, instance_id: str, data: bytes) -> bytes:
        """A running instance's new options read `pending` for the window, in moto's state and in this answer."""
        instance = self.moto_instance(account, region, instance_id)
        if instance is None or instance.state != "running":
            return data
        instance.metadata_options.state = "pending"
        # From the answer on: moto may have taken a while to get to it.
        until = time.time() + self.s.metadata_transition * self.factor(account, ("metadata", instance_id))
        with self.lock:
            self.metadata_pending[(account, region, instance_id)] = until
        environ["emulator.realism"] = "metadata_pending"
        return data.replace(b"<state>applied</state>", b"<state>pending</state>", 1)

    def metadata_applied(self, account: str, region: str, asked: set[str], now: float) -> bool:
        """Before moto describes instances (`asked`, or all): the options whose window has ended are `applied`.
        Whether one it describes still reads `pending`."""
        with self.lock:
            mine = {k: until for k, until in self.metadata_pending.items() if k[:2] == (account, region)}
            done = [k for k, until in mine.items() if now >= until]
            for k in done:
                del self.metadata_pending[k]
        for _, _, instance_id in done:
            instance = self.moto_instance(account, region, instance_id)
            if instance is not None:
                instance.metadata_options.state = "applied"
        return any(now < until and (not asked or k[2] in asked) for k, until in mine.items())

    # ---- the services that assume roles: Lambda, Step Functions, Batch ----------------------------------

    def role_not_assumable(self, account: str, role: str | None, now: float) -> bool:
        """True while the services cannot assume `role` (an ARN, or for Batch also a name or path/name) yet."""
        if not isinstance(role, str) or not role or not self.s.service_lag:
            return False
        with self.lock:
            until = self.service_roles.get((account, role.rsplit("/", 1)[-1]))
        return until is not None and now < until

    def service_request(self, environ, start_response, service: str, body: bytes) -> Iterable[bytes]:
        key, region = credential(environ, {})
        account = self.account_of(key)
        now = time.time()
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        try:
            doc = json.loads(body) if body else {}
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        answer = None
        if service == "lambda":
            named = ((method == "POST" and LAMBDA_FUNCTIONS.match(path))
                     or (method == "PUT" and LAMBDA_CONFIGURATION.match(path)))
            if named and self.role_not_assumable(account, doc.get("Role"), now):
                answer = json_error("400 Bad Request", "InvalidParameterValueException", LAMBDA_CANNOT_ASSUME,
                                    "service_role_not_propagated", rest=True)
        elif service == "states":
            operation = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
            if (operation in ("CreateStateMachine", "UpdateStateMachine")
                    and self.role_not_assumable(account, doc.get("roleArn"), now)):
                answer = json_error("400 Bad Request", "AccessDeniedException", SFN_CANNOT_ASSUME,
                                    "service_role_not_propagated", rest=False)
        elif service == "batch" and method == "POST":
            operation = path.rstrip("/").rsplit("/", 1)[-1]
            if operation == "createcomputeenvironment":
                return self.batch_create(environ, start_response, account, region, doc, now)
            if operation == "describecomputeenvironments":
                return self.batch_describe(environ, start_response, account, region, doc)
            if operation == "deletecomputeenvironment":
                return self.batch_delete(environ, start_response, account, region, doc)
        if answer is not None:
            environ["emulator.realism"] = answer.kind
            start_response(answer.status, answer.headers)
            return [answer.body]
        return self.app(environ, start_response)

    def call(self, environ) -> tuple[str, list[tuple[str, str]], bytes]:
        """moto's whole answer to the request."""
        answered: list[Any] = []

        def capture(s: str, headers, exc_info=None):
            answered[:] = [s, list(headers)]
            return lambda _data: None

        result = self.app(environ, capture)
        data = b"".join(result)
        if hasattr(result, "close"):
            result.close()
        status, headers = answered if answered else ("500 Internal Server Error", [])
        return status, headers, data

    def batch_create(self, environ, start_response, account: str, region: str, doc: dict[str, Any],
                     now: float) -> Iterable[bytes]:
        """moto creates it; realism decides how it reads: CREATING for a moment, then VALID, or INVALID when Batch
        could not assume its service role yet."""
        status, headers, data = self.call(environ)
        if status[:1] == "2":
            try:
                arn = json.loads(data).get("computeEnvironmentArn")
            except (ValueError, AttributeError):
                arn = None
            if arn:
                role = doc.get("serviceRole")
                reason = None
                if self.role_not_assumable(account, role, now):
                    role_arn = role if role.startswith("arn:") else (
                        f"arn:{partition_of(region)}:iam::{account}:role/{role}")
                    reason = batch_cannot_assume(role_arn)
                    environ["emulator.realism"] = "batch_role_not_propagated"
                creating = now + self.s.batch_transition * self.factor(account, ("batch", arn))
                name = doc.get("computeEnvironmentName")
                with self.lock:
                    self.compute_environments[(account, region, arn)] = (creating, reason)
                    # A new one with the name of one still DELETING replaces it (not modelled: AWS's answer then).
                    for k, (_, entry) in list(self.deleting.items()):
                        if k[:2] == (account, region) and entry.get("computeEnvironmentName") == name:
                            del self.deleting[k]
        start_response(status, headers)
        return [data]

    def batch_describe(self, environ, start_response, account: str, region: str,
                       doc: dict[str, Any]) -> Iterable[bytes]:
        status, headers, data = self.call(environ)
        try:
            out = json.loads(data) if status[:1] == "2" else None
        except ValueError:
            out = None
        if not isinstance(out, dict) or not isinstance(out.get("computeEnvironments"), list):
            start_response(status, headers)
            return [data]
        now = time.time()
        changed = False
        for entry in out["computeEnvironments"]:
            with self.lock:
                known = self.compute_environments.get((account, region, entry.get("computeEnvironmentArn", "")))
            if known is None:
                continue
            creating, reason = known
            if now < creating:
                entry["status"] = "CREATING"
                entry.pop("statusReason", None)
                changed = True
            elif reason is not None:
                entry["status"], entry["statusReason"] = "INVALID", reason
                changed = True
        for entry in out["computeEnvironments"]:
            role = entry.get("serviceRole")
            if entry.get("status") == "VALID" and isinstance(role, str) and not self.role_exists(account, role):
                entry["status"], entry["statusReason"] = "INVALID", batch_cannot_assume(role)
                changed = True
        asked = set(doc.get("computeEnvironments") or [])
        with self.lock:
            deleting = list(self.deleting.items())
        for k, (_, entry) in deleting:
            if k[:2] == (account, region) and (not asked or k[2] in asked
                                               or entry.get("computeEnvironmentName") in asked):
                out["computeEnvironments"].append(dict(entry))
                changed = True
        if changed:
            environ["emulator.realism"] = "batch_status"
            data = json.dumps(out).encode()
            headers = [(k, str(len(data)) if k.lower() == "content-length" else v) for k, v in headers]
        start_response(status, headers)
        return [data]

    @staticmethod
    def role_exists(account: str, role_arn: str) -> bool:
        """The role of this ARN is in moto's IAM (a name without an ARN is taken as existing)."""
        if not role_arn.startswith("arn:"):
            return True
        from moto.iam.models import iam_backends  # moto is imported by the emulator first
        try:
            iam_backends[account][role_arn.split(":")[1]].get_role_by_arn(role_arn)
            return True
        except Exception:  # moto's NotFoundException, or an account it never saw
            return False

    def batch_delete(self, environ, start_response, account: str, region: str,
                     doc: dict[str, Any]) -> Iterable[bytes]:
        """moto forgets it at once; realism keeps describing it as DELETING (state DISABLED) for a moment."""
        before = None
        wanted = doc.get("computeEnvironment")
        if self.s.batch_transition and wanted:
            from moto.batch.models import batch_backends  # moto is imported by the emulator first
            try:
                found = batch_backends[account][region].describe_compute_environments([wanted])
            except Exception:  # noqa: BLE001 - moto's answer to the delete itself says what is wrong
                found = []
            before = found[0] if found else None
        status, headers, data = self.call(environ)
        if status[:1] == "2" and before is not None:
            arn = before["computeEnvironmentArn"]
            ghost = {**before, "status": "DELETING", "state": "DISABLED"}
            ghost.pop("statusReason", None)
            until = time.time() + self.s.batch_transition * self.factor(account, ("batch-delete", arn))
            with self.lock:
                self.compute_environments.pop((account, region, arn), None)
                self.deleting[(account, region, arn)] = (until, ghost)
        start_response(status, headers)
        return [data]

    def stats(self) -> dict[str, Any]:
        now = time.time()
        with self.lock:
            return {"kept_reads": sum(1 for k in self.kept.values() if now < k.until),
                    "delete_conflicts": sum(1 for until, _ in self.conflicts.values() if now < until),
                    "sessions": len(self.sessions),
                    "service_roles_lagging": sum(1 for until in self.service_roles.values() if now < until),
                    "metadata_pending": sum(1 for until in self.metadata_pending.values() if now < until)}


def service_of(environ: dict[str, Any]) -> str | None:
    m = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return m.group(3) if m else None
