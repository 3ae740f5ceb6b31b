"""CloudFormation StackSets for the emulator (tools/emulator.py), answered as CloudFormation does.

moto 5.2.5 has StackSets, but not as CloudFormation runs them (measured against the template `wfboot export
--format cloudformation` prints, from an organisation's management account): every operation finished inside the
call; CreateStackInstances answered IAM's EntityAlreadyExists synchronously when one account held a hand-made role
(and left the resources it had made before it in that account); AccountFilterType, OperationPreferences, RetainStacks
and CallAs were ignored; DeleteStackInstances with DeploymentTargets deleted nothing; DescribeStackSet had no
AutoDeployment and ManagedExecution read false; moving an account into a targeted OU deployed nothing; a root target
deployed into the management account; AWS::IAM::Role's ManagedPolicyArns and AWS::IAM::ServiceLinkedRole were skipped
(the latter with a warning); a deleted stack left its managed policies; an operation id could be used twice;
DescribeOrganizationsAccess and ActivateOrganizationsAccess were not implemented (HTTP 500); RegisterDelegatedAdministrator
refused the StackSets principal. moto 5.2.6 changes none of this (its StackSet changes: ListStackSets' Status filter and
UpdateStackInstances' handling of missing targets).

This module replaces moto's StackSet actions with its own model and keeps moto for everything else:

* Operations run in the background. CreateStackSet is synchronous; CreateStackInstances, UpdateStackSet,
  UpdateStackInstances and DeleteStackInstances answer an OperationId at once, and a worker thread deploys account by
  account, --stackset-account-seconds per account (default 0.2 s), honouring OperationPreferences (concurrency, failure
  tolerance, STRICT/SOFT_FAILURE_TOLERANCE, region order) and taking the emulator's moto lock for each account, so
  requests keep being answered meanwhile. CloudFormation API reference, CreateStackInstances / StackSetOperation /
  StackSetOperationPreferences (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_StackSetOperationPreferences.html).
* An OperationId already used on the StackSet answers OperationIdAlreadyExistsException (HTTP 409); a write while an
  operation runs answers OperationInProgressException "Another Operation on StackSet ARN is in progress" (HTTP 409,
  the text hashicorp/terraform-provider-aws#11726 quotes) unless ManagedExecution is active: then it is QUEUED and
  started in request order ("If there are already running or queued operations, CloudFormation queues all incoming
  operations even if they are non-conflicting.", API_ManagedExecution.html).
* Each account's stack is deployed by this module into that account's IAM (AWS::IAM::Role with ManagedPolicyArns,
  Policies, Tags; ManagedPolicy; InstanceProfile; ServiceLinkedRole), with CloudFormation's intrinsic functions,
  conditions and parameters (the StackSet's, with the instance's ParameterOverrides). A resource whose name exists and
  that no stack owns fails that account's instance, never the call: StatusReason
  "ResourceLogicalId:ID, ResourceType:TYPE, ResourceStatusReason:NAME already exists." (the format of the AWS CLI's
  list-stack-instances example, https://docs.aws.amazon.com/cli/latest/reference/cloudformation/list-stack-instances.html;
  "NAME already exists" is CloudFormation's resource event for a name taken outside the stack, e.g.
  aws-samples/dataops-platform-airflow-dbt#1, aws-samples/aws-modern-application-workshop#72; "... already exists in
  stack ARN" when another stack owns it), and a service-linked role that exists fails with IAM's answer to
  CreateServiceLinkedRole, "Service role name NAME has been taken in this account, please try a different suffix."
  (quoted in chanzuckerberg/cztack#897). The resources made before the failure are rolled back and the hand-made one
  is left exactly as it was. The stack is visible in the member account (DescribeStacks, ListStackResources).
* DeploymentTargets: OrganizationalUnitIds (the root: every account; child OUs included), AccountFilterType NONE /
  INTERSECTION / DIFFERENCE / UNION with Accounts; the management account is never a target of a service-managed
  StackSet (API_DeploymentTargets.html); at most 50 OUs per CreateStackInstances (API_CreateStackInstances.html).
* Auto-deployment: an account moved (MoveAccount) or created into a targeted OU gets an instance (an operation); one
  that leaves every targeted OU (or the organisation) has its instance deleted, its resources kept when
  RetainStacksOnAccountRemoval (CloudFormation User Guide, "Manage automatic deployments",
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/stacksets-orgs-manage-auto-deployment.html).
  OperationPreferences do not apply to them ("StackSetOperationPreferences don't apply to AutoDeployment").
* Trusted access (the Organizations principal member.org.stacksets.cloudformation.amazonaws.com, which
  ActivateOrganizationsAccess enables and DescribeOrganizationsAccess reads) is required for a SERVICE_MANAGED
  StackSet: "You must enable organizations access to operate a service managed stack set" (quoted in
  pepperize/cdk-organizations#1718). CallAs=DELEGATED_ADMIN works from an account registered for that principal,
  on the StackSets of the management account, where service-managed StackSets live ("StackSets with
  service-managed permissions are created in the management account, including StackSets that are created by
  delegated administrators.", API_CreateStackSet.html); from any other account: "You must be the master or delegated
  admin account of an organization before operating a SERVICE_MANAGED stack set" (quoted in
  aws-cloudformation/cloudformation-coverage-roadmap#799); from the management account with CallAs=DELEGATED_ADMIN,
  "Account used is not a delegated administrator" (quoted in cdklabs/cdk-stacksets#265).

The deployment work never goes through the HTTP server, so it is not in the request log and not counted as
requests; GET /__emulator/stats has a "stacksets" section, and POST /__emulator/control {"stacksets_settle": true}
ends every running and queued operation at once (their remaining accounts are deployed now).
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

TRUSTED_ACCESS_PRINCIPAL = "member.org.stacksets.cloudformation.amazonaws.com"
MAX_OUS_PER_CALL = 50  # API_CreateStackInstances.html: "The maximum number of organizational unit (OUs) ... is 50."
DEFAULT_ACCOUNT_SECONDS = 0.2

# The texts below are AWS's where a public source quotes them (see the module docstring); the others are marked.
NOT_ORG_ADMIN = ("You must be the master or delegated admin account of an organization before operating a "
                 "SERVICE_MANAGED stack set")
NO_TRUSTED_ACCESS = "You must enable organizations access to operate a service managed stack set"
# CallAs=DELEGATED_ADMIN from the management account, which cannot be registered as a delegated administrator
# (quoted in cdklabs/cdk-stacksets#265 and aws-solutions/quota-monitor-for-aws#102, both run from the management account).
NOT_DELEGATED_ADMIN = "Account used is not a delegated administrator"
# Wording unverified (botocore's model documents the error, not its text).
OPERATION_ID_EXISTS = "The specified operation ID already exists."
STACKSET_NOT_EMPTY = ("You can't yet delete this StackSet, because it still contains one or more stack instances. "
                      "Delete all stack instances from the StackSet before deleting the StackSet.")
TOO_MANY_OUS = (f"The maximum number of organizational units (OUs) supported by a CreateStackInstances operation is "
                f"{MAX_OUS_PER_CALL}. Split the OUs across calls or target a parent OU.")  # wording unverified
ACCOUNT_GATE_SKIPPED = "Function not found: arn:{partition}:lambda:{region}:{account}:function:AWSCloudFormationStackSetAccountGate"

IAM_SERVICE = "AmazonIdentityManagement"
SUPPORTED_TYPES = ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::InstanceProfile", "AWS::IAM::ServiceLinkedRole")
PSEUDO_NO_VALUE = object()


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def url_suffix(partition: str) -> str:
    return "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"


# --------------------------------------------------------------------------------------
# Errors: moto serialises a CloudFormationError with the code it carries (the status code comes from botocore's
# model of that error: 409 for OperationInProgressException, OperationIdAlreadyExistsException, ...; 400 otherwise).
# --------------------------------------------------------------------------------------


def cfn_error(code: str, message: str) -> Exception:
    from moto.cloudformation.exceptions import CloudFormationError
    return CloudFormationError(code, message)


def validation(message: str) -> Exception:
    return cfn_error("ValidationError", message)


def iam_reason(message: str, code: str, status: int) -> str:
    """A service error as CloudFormation words it in a resource's status reason (the AWS CLI example's form)."""
    return f"{message} (Service: {IAM_SERVICE}; Status Code: {status}; Error Code: {code}; Request ID: {uuid.uuid4()})"


def resource_reason(logical_id: str, rtype: str, reason: str) -> str:
    return f"ResourceLogicalId:{logical_id}, ResourceType:{rtype}, ResourceStatusReason:{reason}"


class DeployError(Exception):
    """A stack instance's deployment failed; `reason` is the instance's StatusReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------
# Templates: parameters, conditions, intrinsic functions, dependency order
# --------------------------------------------------------------------------------------


def parse_template(body: str) -> dict[str, Any]:
    from moto.cloudformation.models import Stack  # YAML with CloudFormation's short tags, or JSON
    try:
        doc = Stack.parse_template(body)
    except Exception as e:  # noqa: BLE001 - any parse failure is CloudFormation's "Template format error"
        raise validation(f"Template format error: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict) or not doc["Resources"]:
        raise validation("Template format error: At least one Resources member must be defined.")
    return doc


def required_capability(doc: dict[str, Any]) -> str | None:
    """CAPABILITY_NAMED_IAM for IAM resources with custom names, CAPABILITY_IAM for other IAM resources (CloudFormation
    User Guide, "Acknowledging IAM resources in CloudFormation templates")."""
    names = {"AWS::IAM::Role": "RoleName", "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
             "AWS::IAM::InstanceProfile": "InstanceProfileName", "AWS::IAM::User": "UserName",
             "AWS::IAM::Group": "GroupName"}
    needed = None
    for r in doc.get("Resources", {}).values():
        rtype = r.get("Type", "") if isinstance(r, dict) else ""
        if not rtype.startswith("AWS::IAM::"):
            continue
        if names.get(rtype) and names[rtype] in (r.get("Properties") or {}):
            return "CAPABILITY_NAMED_IAM"
        needed = "CAPABILITY_IAM"
    return needed


class Template:
    """A template evaluated for one stack: parameters, conditions, and values with intrinsic functions resolved."""

    def __init__(self, doc: dict[str, Any], params: dict[str, str], account: str, region: str, stack_name: str,
                 stack_id: str) -> None:
        self.doc = doc
        self.resources: dict[str, dict[str, Any]] = doc["Resources"]
        self.partition = partition_of(region)
        self.pseudo = {
            "AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": self.partition,
            "AWS::URLSuffix": url_suffix(self.partition), "AWS::StackName": stack_name, "AWS::StackId": stack_id,
            "AWS::NotificationARNs": [], "AWS::NoValue": PSEUDO_NO_VALUE,
        }
        self.params = self.resolve_parameters(params)
        self.conditions: dict[str, bool] = {}
        self.refs: dict[str, Any] = {}  # logical id -> what Ref answers, once made
        self.attrs: dict[str, dict[str, Any]] = {}  # logical id -> its Fn::GetAtt attributes

    def resolve_parameters(self, given: dict[str, str]) -> dict[str, Any]:
        declared = self.doc.get("Parameters") or {}
        values: dict[str, Any] = {}
        missing = []
        for name, decl in declared.items():
            value = given.get(name, decl.get("Default"))
            if value is None:
                missing.append(name)
                continue
            value = str(value)
            allowed = decl.get("AllowedValues")
            if allowed is not None and value not in [str(a) for a in allowed]:
                raise DeployError(f"Parameter '{name}' must be one of AllowedValues")
            if decl.get("Type", "String") == "CommaDelimitedList":
                values[name] = value.split(",")
            else:
                values[name] = value
        if missing:
            raise DeployError(f"Parameters: [{', '.join(missing)}] must have values")
        return values

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            conditions = self.doc.get("Conditions") or {}
            if name not in conditions:
                raise DeployError(f"Template format error: Unresolved condition dependency {name} in Fn::If")
            self.conditions[name] = bool(self.resolve(conditions[name]))
        return self.conditions[name]

    def active(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return True if cond is None else self.condition(cond)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not PSEUDO_NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            fn = FUNCTIONS.get(key)
            if fn is not None:
                return fn(self, arg)
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not PSEUDO_NO_VALUE}

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.refs:
            return self.refs[name]
        raise DeployError(f"Template format error: Unresolved resource dependencies [{name}] in the Resources block "
                          "of the template")

    def get_att(self, logical_id: str, attr: str) -> Any:
        try:
            return self.attrs[logical_id][attr]
        except KeyError:
            raise DeployError(f"Template error: resource {logical_id} does not support attribute type {attr} in "
                              "Fn::GetAtt") from None

    def sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def one(m: re.Match) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                lid, attr = name.split(".", 1)
                return str(self.get_att(lid, attr))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    # ---- what a value depends on ----

    def dependencies(self, logical_id: str) -> set[str]:
        deps: set[str] = set()
        r = self.resources[logical_id]
        depends_on = r.get("DependsOn", [])
        deps.update([depends_on] if isinstance(depends_on, str) else depends_on)

        def walk(v: Any) -> None:
            if isinstance(v, list):
                for x in v:
                    walk(x)
            elif isinstance(v, dict):
                for k, x in v.items():
                    if k == "Ref" and isinstance(x, str) and x in self.resources:
                        deps.add(x)
                    elif k == "Fn::GetAtt":
                        target = x.split(".", 1)[0] if isinstance(x, str) else x[0]
                        if target in self.resources:
                            deps.add(target)
                    elif k == "Fn::Sub":
                        text = x if isinstance(x, str) else x[0]
                        for name in re.findall(r"\$\{([^}!][^}]*)\}", text):
                            if name.split(".", 1)[0] in self.resources:
                                deps.add(name.split(".", 1)[0])
                        if not isinstance(x, str):
                            walk(x[1])
                    else:
                        walk(x)

        walk(r.get("Properties") or {})
        return deps & set(self.resources)

    def order(self) -> list[str]:
        """The resources in an order where each comes after what it references (the template's order otherwise)."""
        remaining = list(self.resources)
        deps = {lid: self.dependencies(lid) for lid in remaining}
        done: list[str] = []
        while remaining:
            ready = [lid for lid in remaining if deps[lid] <= set(done)]
            if not ready:
                raise DeployError(f"Circular dependency between resources: {sorted(remaining)}")
            done.extend(ready)
            remaining = [lid for lid in remaining if lid not in ready]
        return done


def _fn_ref(t: Template, arg: Any) -> Any:
    return t.ref(arg)


def _fn_get_att(t: Template, arg: Any) -> Any:
    lid, attr = arg.split(".", 1) if isinstance(arg, str) else arg
    return t.get_att(lid, t.resolve(attr))


def _fn_join(t: Template, arg: Any) -> str:
    sep, items = arg
    return t.resolve(sep).join(str(x) for x in t.resolve(items))


def _fn_select(t: Template, arg: Any) -> Any:
    index, items = arg
    return t.resolve(items)[int(t.resolve(index))]


def _fn_split(t: Template, arg: Any) -> list[str]:
    sep, text = arg
    return str(t.resolve(text)).split(t.resolve(sep))


def _fn_if(t: Template, arg: Any) -> Any:
    cond, yes, no = arg
    return t.resolve(yes) if t.condition(cond) else t.resolve(no)


def _fn_find_in_map(t: Template, arg: Any) -> Any:
    name, key, sub = (t.resolve(a) for a in arg)
    return (t.doc.get("Mappings") or {})[name][key][sub]


FUNCTIONS: dict[str, Callable[[Template, Any], Any]] = {
    "Ref": _fn_ref,
    "Fn::GetAtt": _fn_get_att,
    "Fn::Sub": lambda t, a: t.sub(a),
    "Fn::Join": _fn_join,
    "Fn::Select": _fn_select,
    "Fn::Split": _fn_split,
    "Fn::If": _fn_if,
    "Fn::FindInMap": _fn_find_in_map,
    "Fn::Equals": lambda t, a: str(t.resolve(a[0])) == str(t.resolve(a[1])),
    "Fn::Not": lambda t, a: not t.resolve(a[0]),
    "Fn::And": lambda t, a: all(t.resolve(x) for x in a),
    "Fn::Or": lambda t, a: any(t.resolve(x) for x in a),
    "Condition": lambda t, a: t.condition(a),
}


# --------------------------------------------------------------------------------------
# Deploying one account's stack into its IAM (moto's backend, called directly: not a request)
# --------------------------------------------------------------------------------------


@dataclass
class Made:
    """One resource of a deployed stack."""
    logical_id: str
    rtype: str
    physical: str  # what Ref answers: a name, or a managed policy's ARN
    props: dict[str, Any]  # its properties, resolved
    attrs: dict[str, Any] = field(default_factory=dict)


def generated_name(stack_name: str, logical_id: str, limit: int = 64) -> str:
    suffix = "".join(random.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(12))
    base = f"{stack_name}-{logical_id}"[: limit - 13]
    return f"{base}-{suffix}"


def as_json_text(doc: Any) -> str:
    return doc if isinstance(doc, str) else json.dumps(doc)


def tag_list(tags: Any) -> list[dict[str, str]]:
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in (tags or [])]


class Deployer:
    """Creates, updates and deletes the IAM resources of one stack in one account, as CloudFormation's handlers do:
    conflicts with resources it does not own fail the stack (and what it made is rolled back), IAM's own refusals
    (DeleteConflict) fail it too."""

    def __init__(self, account: str, region: str, owners: Callable[[str, str, str], str | None]) -> None:
        from moto.iam.models import iam_backends
        self.account, self.region = account, region
        self.partition = partition_of(region)
        self.iam = iam_backends[account][self.partition]
        self.owner_of = owners  # (account, type, physical id) -> ARN of the stack that owns it, or None

    # ---- names and conflicts ----

    def physical_name(self, t: Template, lid: str, rtype: str, props: dict[str, Any]) -> str:
        name_prop = {"AWS::IAM::Role": "RoleName", "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
                     "AWS::IAM::InstanceProfile": "InstanceProfileName"}.get(rtype)
        if name_prop and props.get(name_prop):
            return str(props[name_prop])
        if rtype == "AWS::IAM::ServiceLinkedRole":
            return str(props.get("AWSServiceName", ""))
        return generated_name(t.pseudo["AWS::StackName"], lid)

    def policy_arn(self, name: str, path: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:policy{path}{name}"

    def existing_service_linked_role(self, service: str) -> Any:
        prefix = f"/aws-service-role/{service}/"
        return next((r for r in self.iam.roles.values() if r.path == prefix), None)

    def conflict(self, lid: str, rtype: str, name: str, props: dict[str, Any]) -> str | None:
        """CloudFormation's reason when what this resource would create exists already, or None."""
        if rtype == "AWS::IAM::ServiceLinkedRole":
            role = self.existing_service_linked_role(name)
            if role is None:
                return None
            return resource_reason(lid, rtype, iam_reason(
                f"Service role name {role.name} has been taken in this account, please try a different suffix.",
                "InvalidInput", 400))
        exists = False
        physical = name
        if rtype == "AWS::IAM::Role":
            exists = any(r.name == name for r in self.iam.roles.values())
        elif rtype == "AWS::IAM::InstanceProfile":
            exists = any(p.name == name for p in self.iam.instance_profiles.values())
        elif rtype == "AWS::IAM::ManagedPolicy":
            physical = self.policy_arn(name, props.get("Path") or "/")
            exists = physical in self.iam.managed_policies
        if not exists:
            return None
        owner = self.owner_of(self.account, rtype, physical)
        where = f" in stack {owner}" if owner else ""
        return resource_reason(lid, rtype, f"{name} already exists{where}.")

    # ---- create / update / delete, per type ----

    def create(self, t: Template, lid: str, rtype: str, name: str, props: dict[str, Any]) -> Made:
        iam = self.iam
        if rtype == "AWS::IAM::Role":
            role = iam.create_role(
                role_name=name, assume_role_policy_document=as_json_text(props.get("AssumeRolePolicyDocument", {})),
                path=props.get("Path") or "/", permissions_boundary=props.get("PermissionsBoundary") or None,
                description=props.get("Description") or "", tags=tag_list(props.get("Tags")),
                max_session_duration=props.get("MaxSessionDuration") or 3600)
            made = Made(lid, rtype, name, props, {"Arn": role.arn, "RoleId": role.id})
            try:
                for arn in props.get("ManagedPolicyArns") or []:
                    iam.attach_role_policy(arn, name)
                for p in props.get("Policies") or []:
                    iam.put_role_policy(name, p["PolicyName"], as_json_text(p["PolicyDocument"]))
            except Exception:
                self.delete(made)  # what it attached is detached again, the role goes
                raise
            return made
        if rtype == "AWS::IAM::ManagedPolicy":
            path = props.get("Path") or "/"
            policy = iam.create_policy(description=props.get("Description") or "", path=path,
                                       policy_document=as_json_text(props.get("PolicyDocument", {})),
                                       policy_name=name, tags=[])
            made = Made(lid, rtype, policy.arn, props, {"PolicyArn": policy.arn})
            try:
                self.attach_policy(policy.arn, props, {})
            except Exception:
                self.delete(made)
                raise
            return made
        if rtype == "AWS::IAM::InstanceProfile":
            profile = iam.create_instance_profile(name=name, path=props.get("Path") or "/",
                                                  role_names=list(props.get("Roles") or []))
            return Made(lid, rtype, name, props, {"Arn": profile.arn})
        if rtype == "AWS::IAM::ServiceLinkedRole":
            role = iam.create_service_linked_role(name, props.get("Description") or "", props.get("CustomSuffix") or "")
            return Made(lid, rtype, role.name, props, {"Arn": role.arn, "RoleId": role.id})
        raise DeployError(resource_reason(lid, rtype, f"Resource type {rtype} is not supported by the emulator's "
                                                      "StackSets (tools/stacksets.py)."))

    def attach_policy(self, arn: str, props: dict[str, Any], old: dict[str, Any]) -> None:
        for key, attach, detach in (("Roles", self.iam.attach_role_policy, self.iam.detach_role_policy),
                                    ("Users", self.iam.attach_user_policy, self.iam.detach_user_policy),
                                    ("Groups", self.iam.attach_group_policy, self.iam.detach_group_policy)):
            new, before = set(props.get(key) or []), set(old.get(key) or [])
            for who in sorted(before - new):
                detach(arn, who)
            for who in sorted(new - before):
                attach(arn, who)

    REPLACING = {"AWS::IAM::Role": ("RoleName", "Path"), "AWS::IAM::ManagedPolicy": ("ManagedPolicyName", "Path",
                                                                                     "Description"),
                 "AWS::IAM::InstanceProfile": ("InstanceProfileName", "Path"),
                 "AWS::IAM::ServiceLinkedRole": ("AWSServiceName", "CustomSuffix")}

    def needs_replacement(self, old: Made, rtype: str, props: dict[str, Any]) -> bool:
        return old.rtype != rtype or any(old.props.get(k) != props.get(k) for k in self.REPLACING.get(rtype, ()))

    def update(self, old: Made, props: dict[str, Any]) -> Made:
        iam, name = self.iam, old.physical
        if old.rtype == "AWS::IAM::Role":
            if old.props.get("AssumeRolePolicyDocument") != props.get("AssumeRolePolicyDocument"):
                iam.update_assume_role_policy(name, as_json_text(props.get("AssumeRolePolicyDocument", {})))
            if (old.props.get("Description"), old.props.get("MaxSessionDuration")) != \
                    (props.get("Description"), props.get("MaxSessionDuration")):
                iam.update_role(name, props.get("Description") or "", props.get("MaxSessionDuration") or 3600)
            old_tags = {t["Key"]: t["Value"] for t in tag_list(old.props.get("Tags"))}
            new_tags = {t["Key"]: t["Value"] for t in tag_list(props.get("Tags"))}
            gone = sorted(set(old_tags) - set(new_tags))
            if gone:
                iam.untag_role(name, gone)
            changed = [{"Key": k, "Value": v} for k, v in new_tags.items() if old_tags.get(k) != v]
            if changed:
                iam.tag_role(name, changed)
            before, after = set(old.props.get("ManagedPolicyArns") or []), set(props.get("ManagedPolicyArns") or [])
            for arn in sorted(before - after):
                iam.detach_role_policy(arn, name)
            for arn in sorted(after - before):
                iam.attach_role_policy(arn, name)
            old_inline = {p["PolicyName"]: p["PolicyDocument"] for p in old.props.get("Policies") or []}
            new_inline = {p["PolicyName"]: p["PolicyDocument"] for p in props.get("Policies") or []}
            for pname in sorted(set(old_inline) - set(new_inline)):
                iam.delete_role_policy(name, pname)
            for pname, doc in new_inline.items():
                if old_inline.get(pname) != doc:
                    iam.put_role_policy(name, pname, as_json_text(doc))
            if old.props.get("PermissionsBoundary") != props.get("PermissionsBoundary"):
                if props.get("PermissionsBoundary"):
                    iam.put_role_permissions_boundary(name, props["PermissionsBoundary"])
                else:
                    iam.delete_role_permissions_boundary(name)
        elif old.rtype == "AWS::IAM::ManagedPolicy":
            arn = old.physical
            if old.props.get("PolicyDocument") != props.get("PolicyDocument"):
                policy = iam.get_policy(arn)
                if len(policy.versions) >= 5:  # IAM keeps five versions; CloudFormation drops the oldest
                    oldest = next(v for v in policy.versions if not v.is_default)
                    iam.delete_policy_version(arn, oldest.version_id)
                iam.create_policy_version(arn, as_json_text(props.get("PolicyDocument", {})), True)
            self.attach_policy(arn, props, old.props)
        elif old.rtype == "AWS::IAM::InstanceProfile":
            before, after = list(old.props.get("Roles") or []), list(props.get("Roles") or [])
            for role in before:
                if role not in after:
                    iam.remove_role_from_instance_profile(name, role)
            for role in after:
                if role not in before:
                    iam.add_role_to_instance_profile(name, role)
        return Made(old.logical_id, old.rtype, old.physical, props, old.attrs)

    def delete(self, made: Made) -> None:
        iam, name = self.iam, made.physical
        if made.rtype == "AWS::IAM::Role":
            role = next((r for r in iam.roles.values() if r.name == name), None)
            if role is None:
                return  # deleted behind CloudFormation's back: DELETE_COMPLETE all the same
            for arn in made.props.get("ManagedPolicyArns") or []:
                if arn in role.managed_policies:
                    iam.detach_role_policy(arn, name)
            for p in made.props.get("Policies") or []:
                if p["PolicyName"] in role.policies:
                    iam.delete_role_policy(name, p["PolicyName"])
            iam.delete_role(name)  # DeleteConflict if something outside the stack still holds it
        elif made.rtype == "AWS::IAM::ManagedPolicy":
            if made.physical not in iam.managed_policies:
                return
            policy = iam.get_policy(made.physical)
            self.attach_policy(made.physical, {}, made.props)
            if policy.attachment_count > 0:
                from moto.iam.exceptions import DeleteConflictException
                raise DeleteConflictException("Cannot delete a policy attached to entities.")
            for v in list(policy.versions):
                if not v.is_default:
                    iam.delete_policy_version(made.physical, v.version_id)
            iam.delete_policy(made.physical)
        elif made.rtype == "AWS::IAM::InstanceProfile":
            if not any(p.name == name for p in iam.instance_profiles.values()):
                return
            profile = iam.get_instance_profile(name)
            for role in list(made.props.get("Roles") or []):
                if any(r.name == role for r in profile.roles):
                    iam.remove_role_from_instance_profile(name, role)
            iam.delete_instance_profile(name)
        elif made.rtype == "AWS::IAM::ServiceLinkedRole":
            if any(r.name == name for r in iam.roles.values()):
                iam.delete_service_linked_role(name)

    # ---- a whole stack ----

    def deploy(self, t: Template, old: dict[str, Made] | None) -> dict[str, Made]:
        """Creates the stack (old None) or updates it from `old`; answers what it holds now. On failure raises
        DeployError with CloudFormation's reason, having rolled back what it made (a failed update leaves the resources
        it had changed as they are now: its rollback is not modelled)."""
        old = dict(old or {})
        order = t.order()
        wanted = [lid for lid in order if t.active(lid)]
        for lid in wanted:
            rtype = t.resources[lid].get("Type", "")
            if rtype not in SUPPORTED_TYPES:
                raise DeployError(resource_reason(lid, rtype, f"Resource type {rtype} is not supported by the "
                                                              "emulator's StackSets (tools/stacksets.py)."))
        # Refs of resources kept from before are known up front (a name can depend on them).
        for lid, made in old.items():
            t.refs[lid], t.attrs[lid] = made.physical, made.attrs
        made_now: list[Made] = []  # created by this run, rolled back on failure
        result: dict[str, Made] = {}
        replaced: list[Made] = []
        try:
            for lid in wanted:
                rtype = t.resources[lid]["Type"]
                props = t.resolve(t.resources[lid].get("Properties") or {})
                before = old.get(lid)
                if before is not None and not self.needs_replacement(before, rtype, props):
                    result[lid] = self.update(before, props)
                    continue
                if before is not None:  # replaced: the new one first, then the old one goes (CloudFormation's order)
                    replaced.append(before)
                    self.delete(before)
                name = self.physical_name(t, lid, rtype, props)
                reason = self.conflict(lid, rtype, name, props)
                if reason:
                    raise DeployError(reason)
                try:
                    made = self.create(t, lid, rtype, name, props)
                except DeployError:
                    raise
                except Exception as e:  # noqa: BLE001 - IAM's refusal, as the resource's status reason
                    raise DeployError(resource_reason(lid, rtype, describe_error(e))) from None
                made_now.append(made)
                result[lid] = made
                t.refs[lid], t.attrs[lid] = made.physical, made.attrs
        except DeployError:
            for made in reversed(made_now):
                try:
                    self.delete(made)
                except Exception:  # noqa: BLE001 - rollback is best effort, as CloudFormation's ROLLBACK_FAILED
                    pass
            raise
        # Resources the new template no longer has (or whose condition went false) are deleted, dependents first.
        for lid in reversed(order):
            if lid in old and lid not in result and old[lid] not in replaced:
                self.delete_one(old[lid])
        return result

    def delete_one(self, made: Made) -> None:
        try:
            self.delete(made)
        except Exception as e:  # noqa: BLE001
            raise DeployError(resource_reason(made.logical_id, made.rtype, describe_error(e))) from None

    def destroy(self, stack: dict[str, Made], order: list[str]) -> list[str]:
        """Deletes the stack's resources, dependents first; answers the reasons of those it could not delete (they
        stay, as in a DELETE_FAILED stack)."""
        failed: list[str] = []
        for lid in reversed(order):
            made = stack.get(lid)
            if made is None:
                continue
            try:
                self.delete_one(made)
                del stack[lid]
            except DeployError as e:
                failed.append(e.reason)
        return failed


def describe_error(e: Exception) -> str:
    code = getattr(e, "code", None) or type(e).__name__
    message = getattr(e, "message", None) or str(e)
    status = {"DeleteConflict": 409, "EntityAlreadyExists": 409, "NoSuchEntity": 404,
              "LimitExceeded": 409}.get(code, 400)
    return iam_reason(message, code, status)


# --------------------------------------------------------------------------------------
# The StackSets model
# --------------------------------------------------------------------------------------


@dataclass
class Target:
    account: str
    region: str
    ou: str  # the OU (or root) the account was reached through; "" for self-managed


@dataclass
class Instance:
    account: str
    region: str
    ou: str
    stack_id: str
    stack_name: str
    overrides: list[dict[str, Any]] = field(default_factory=list)
    status: str = "OUTDATED"
    detailed: str = "PENDING"
    reason: str | None = None
    last_operation: str | None = None
    applied_version: int = -1  # the StackSet version its stack has; CURRENT when it is the StackSet's
    resources: dict[str, Made] | None = None  # None: no stack (never created, or rolled back)
    order: list[str] = field(default_factory=list)


@dataclass
class Operation:
    id: str
    action: str  # CREATE / UPDATE / DELETE
    status: str
    targets: list[Target]
    prefs: dict[str, Any]
    created: datetime
    deployment_targets: dict[str, Any] | None = None
    retain_stacks: bool | None = None
    auto: bool = False
    ended: datetime | None = None
    status_reason: str | None = None
    results: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    queue: list[Target] = field(default_factory=list)
    wave: list[Target] = field(default_factory=list)
    due: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)  # per region
    stop: bool = False
    overrides: list[dict[str, Any]] | None = None  # UpdateStackInstances / CreateStackInstances ParameterOverrides


@dataclass
class StackSet:
    name: str
    id: str
    arn: str
    owner: str
    region: str
    template: str
    doc: dict[str, Any]
    parameters: dict[str, str]
    capabilities: list[str]
    tags: list[dict[str, str]]
    permission_model: str
    description: str | None
    auto_deployment: dict[str, bool] | None
    managed_execution: bool
    admin_role: str | None
    exec_role: str | None
    client_token: str | None
    status: str = "ACTIVE"
    version: int = 0
    instances: dict[tuple[str, str], Instance] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    ou_ids: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)

    def busy(self) -> bool:
        return any(op.status in ("RUNNING", "QUEUED", "STOPPING") for op in self.operations.values())


def registry(account: str, region: str) -> dict[str, StackSet]:
    """The StackSets of an account and region, kept on moto's CloudFormation backend so that moto's reset clears
    them with everything else."""
    from moto.cloudformation.models import cloudformation_backends
    backend = cloudformation_backends[account][region]
    reg = getattr(backend, "emulator_stacksets", None)
    if reg is None:
        reg = backend.emulator_stacksets = {}
    return reg


# --------------------------------------------------------------------------------------
# Organizations: who is the management account, which accounts an OU holds, trusted access, delegated admins
# --------------------------------------------------------------------------------------


def org_backend_of(account: str) -> Any:
    """The Organizations backend holding `account`'s organisation (its management account's), or None."""
    from moto.organizations.models import organizations_backends
    own = organizations_backends[account]["aws"]
    if own.org is not None:
        return own
    master = organizations_backends.master_accounts.get(account)
    if master is not None:
        return organizations_backends[master[0]][master[1]]
    return None


def ancestors(org: Any, account_id: str) -> list[str]:
    """The OU ids above an account, nearest first, the root last."""
    parents = {ou.id: ou.parent_id for ou in org.ou if hasattr(ou, "parent_id")}
    acct = next((a for a in org.accounts if a.id == account_id), None)
    out: list[str] = []
    node = acct.parent_id if acct is not None else None
    while node and node not in out:
        out.append(node)
        node = parents.get(node)
    return out


def accounts_under(org: Any, ou_id: str) -> list[str]:
    return [a.id for a in org.accounts
            if a.status == "ACTIVE" and ou_id in ancestors(org, a.id) and a.id != org.org.master_account_id]


def trusted_access(org: Any) -> bool:
    return any(s["ServicePrincipal"] == TRUSTED_ACCESS_PRINCIPAL for s in org.services)


def delegated_admin(org: Any, account: str) -> bool:
    return any(a.account.id == account and TRUSTED_ACCESS_PRINCIPAL in a.services for a in org.admins)


# --------------------------------------------------------------------------------------
# The engine: request handlers (run inside the emulator's moto lock), the worker, auto-deployment
# --------------------------------------------------------------------------------------


class Engine:
    def __init__(self, moto_lock: Any, account_seconds: float = DEFAULT_ACCOUNT_SECONDS,
                 log: Callable[[str], None] | None = None) -> None:
        self.lock = moto_lock
        self.seconds = account_seconds
        self.log = log or (lambda _m: None)
        self.wake = threading.Event()
        self.stopped = False
        self.thread: threading.Thread | None = None
        self.counters: dict[str, int] = {}
        self.active: list[tuple[StackSet, Operation]] = []  # running and queued operations, in request order

    # ---- lifecycle ----

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="stacksets", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped = True
        self.wake.set()

    def count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # ---- worker ----

    def run(self) -> None:
        while not self.stopped:
            if not self.active:  # nothing to do: no need for moto's lock (begin() wakes the worker)
                self.wake.wait(timeout=1.0)
                self.wake.clear()
                continue
            try:
                with self.lock:
                    did, wait = self.step(time.monotonic())
            except Exception as e:  # noqa: BLE001 - keep serving; say what failed
                self.log(f"stacksets worker: {e!r}")
                did, wait = False, 0.5
            if did:
                continue
            self.wake.wait(timeout=wait)
            self.wake.clear()

    def step(self, now: float, settle: bool = False) -> tuple[bool, float]:
        """Does one account's work that is due (all of it with `settle`); answers (did something, seconds until the
        next work is due). Called with the moto lock held."""
        self.active = [(s, op) for s, op in self.active if op.status in ("RUNNING", "QUEUED", "STOPPING")
                       and self.alive(s)]
        next_due = 1.0
        for stackset, op in list(self.active):
            if op.status == "QUEUED":
                continue
            if not op.wave:  # starting, or between waves
                self.next_wave(stackset, op, now)
                return True, 0.0
            if settle or op.due <= now:
                target = op.wave.pop(0)
                self.execute(stackset, op, target)
                if not op.wave:
                    self.wave_done(stackset, op, now)
                return True, 0.0
            next_due = min(next_due, op.due - now)
        return False, max(next_due, 0.001)

    def alive(self, stackset: StackSet) -> bool:
        """False once moto's reset dropped the StackSet (its operations are then abandoned)."""
        try:
            return registry(stackset.owner, stackset.region).get(stackset.name) is stackset
        except Exception:  # noqa: BLE001
            return False

    def settle(self) -> int:
        """Ends every running and queued operation now; answers how many accounts' work it did."""
        done = 0
        with self.lock:
            for _ in range(1_000_000):
                did, _wait = self.step(0.0, settle=True)
                if not did:
                    break
                done += 1
        return done

    # ---- operations ----

    def begin(self, stackset: StackSet, op: Operation) -> None:
        """Registers a new operation: it runs now, or waits behind the StackSet's running ones."""
        op.status = "QUEUED" if stackset.busy() else "RUNNING"
        stackset.operations[op.id] = op
        for t in op.targets:
            op.results[(t.account, t.region)] = {"Status": "PENDING", "ou": t.ou}
        op.queue = self.ordered(op.targets, op.prefs)
        self.active.append((stackset, op))
        self.count(f"operations_{op.action.lower()}")
        if op.status == "RUNNING":  # it starts now: its first accounts are under way when the call answers
            self.next_wave(stackset, op, time.monotonic())
        self.wake.set()

    @staticmethod
    def ordered(targets: list[Target], prefs: dict[str, Any]) -> list[Target]:
        order = list(prefs.get("RegionOrder") or [])
        for t in targets:
            if t.region not in order:
                order.append(t.region)
        return sorted(targets, key=lambda t: order.index(t.region))

    def limits(self, op: Operation, region: str) -> tuple[int, int]:
        """(failure tolerance, concurrency now) for a region, as StackSetOperationPreferences define them."""
        p = op.prefs
        n = sum(1 for t in op.targets if t.region == region)
        if p.get("FailureTolerancePercentage") is not None:
            tolerance = math.floor(n * int(p["FailureTolerancePercentage"]) / 100)  # rounded down
        else:
            tolerance = int(p.get("FailureToleranceCount") or 0)
        if p.get("MaxConcurrentPercentage") is not None:
            most = max(1, math.floor(n * int(p["MaxConcurrentPercentage"]) / 100))  # down, but at least one
        else:
            most = int(p.get("MaxConcurrentCount") or 1)
        failed = op.failures.get(region, 0)
        if (p.get("ConcurrencyMode") or "STRICT_FAILURE_TOLERANCE") == "STRICT_FAILURE_TOLERANCE":
            concurrency = max(1, min(most, tolerance + 1) - failed)
        else:
            concurrency = max(1, most)
        return tolerance, concurrency

    def next_wave(self, stackset: StackSet, op: Operation, now: float) -> None:
        if op.stop:
            self.cancel_rest(stackset, op)
            self.finish(stackset, op, stopped=True)
            return
        if not op.queue:
            self.finish(stackset, op)
            return
        region = op.queue[0].region
        _, concurrency = self.limits(op, region)
        op.wave = [t for t in op.queue if t.region == region][:concurrency]
        op.queue = [t for t in op.queue if t not in op.wave]
        for t in op.wave:
            op.results[(t.account, t.region)]["Status"] = "RUNNING"
            inst = stackset.instances.get((t.account, t.region))
            if inst is not None:
                inst.detailed = "RUNNING"
        op.due = now + self.seconds

    def wave_done(self, stackset: StackSet, op: Operation, now: float) -> None:
        if any(n > self.limits(op, region)[0] for region, n in op.failures.items()):
            # The failure tolerance is exceeded: the operation fails, and what has not started is cancelled, in this
            # Region and the ones after it (StackSetOperation Status FAILED; DetailedStatus CANCELLED).
            self.cancel_rest(stackset, op)
            self.finish(stackset, op, failed=True)
            return
        self.next_wave(stackset, op, now)

    def cancel_rest(self, stackset: StackSet, op: Operation) -> None:
        for t in op.queue:
            # Wording unverified.
            op.results[(t.account, t.region)].update(
                Status="CANCELLED",
                StatusReason="User initiated stop" if op.stop else "Cancelled since failure tolerance has exceeded")
            inst = stackset.instances.get((t.account, t.region))
            if inst is not None:
                inst.detailed = "CANCELLED"
                inst.last_operation = op.id
                if op.action != "DELETE":
                    inst.status = "OUTDATED"
        op.queue = []

    def finish(self, stackset: StackSet, op: Operation, failed: bool = False, stopped: bool = False) -> None:
        op.status = "STOPPED" if stopped else ("FAILED" if failed else "SUCCEEDED")
        op.ended = now_utc()
        self.count(f"operations_{op.status.lower()}")
        # The StackSet's next queued operation starts (managed execution: in request order).
        nxt = next((o for s, o in self.active if s is stackset and o.status == "QUEUED"), None)
        if nxt is not None:
            nxt.status = "RUNNING"
            self.next_wave(stackset, nxt, time.monotonic())
            self.wake.set()

    # ---- one account ----

    def execute(self, stackset: StackSet, op: Operation, t: Target) -> None:
        key = (t.account, t.region)
        result = op.results[key]
        try:
            if op.action == "DELETE":
                self.delete_instance(stackset, op, t)
            else:
                self.converge(stackset, op, t)
            result.update(Status="SUCCEEDED")
            result.pop("StatusReason", None)
        except Exception as e:  # noqa: BLE001 - the account fails, the operation goes on
            if isinstance(e, DeployError):
                reason = e.reason
            else:  # the emulator's own fault, said as such rather than dressed as CloudFormation's
                reason = f"Internal failure of the emulator's StackSets (tools/stacksets.py): {e!r}"
                self.log(f"stacksets: {op.action} in {t.account}/{t.region} failed: {e!r}")
                inst = stackset.instances.get(key)
                if inst is not None:
                    inst.status, inst.detailed, inst.reason = "OUTDATED", "FAILED", reason
            op.failures[t.region] = op.failures.get(t.region, 0) + 1
            result.update(Status="FAILED", StatusReason=reason)
            self.count("accounts_failed")

    def owners(self, account: str, rtype: str, physical: str) -> str | None:
        """The ARN of a stack in `account` that owns the resource, or None (a hand-made resource)."""
        from moto.cloudformation.models import cloudformation_backends
        for backend in list(cloudformation_backends[account].values()):
            for stack in list(backend.stacks.values()):
                rmap = getattr(stack, "resource_map", None)
                parsed = getattr(rmap, "_parsed_resources", {}) if rmap is not None else {}
                for res in list(parsed.values()):
                    if getattr(res, "physical_resource_id", None) == physical and \
                            getattr(res, "cf_resource_type", None) in (rtype, None):
                        return stack.stack_id
        return None

    def converge(self, stackset: StackSet, op: Operation, t: Target) -> None:
        """Creates or updates the account's stack to the StackSet's template and parameters."""
        inst = stackset.instances[(t.account, t.region)]
        inst.last_operation = op.id
        params = dict(stackset.parameters)
        params.update({o["ParameterKey"]: o["ParameterValue"] for o in inst.overrides if "ParameterValue" in o})
        deployer = Deployer(t.account, t.region, self.owners)
        created = inst.resources is None
        try:
            tmpl = Template(copy.deepcopy(stackset.doc), params, t.account, t.region, inst.stack_name, inst.stack_id)
            resources = deployer.deploy(tmpl, inst.resources)
        except DeployError as e:
            inst.status, inst.detailed, inst.reason = "OUTDATED", "FAILED", e.reason
            raise
        inst.resources, inst.order = resources, tmpl.order()
        inst.applied_version = stackset.version
        inst.status, inst.detailed, inst.reason = "CURRENT", "SUCCEEDED", None
        self.count("accounts_created" if created else "accounts_updated")
        member_stack(stackset, inst, params, created)

    def delete_instance(self, stackset: StackSet, op: Operation, t: Target) -> None:
        inst = stackset.instances.get((t.account, t.region))
        if inst is None:
            return
        inst.last_operation = op.id
        if not op.retain_stacks and inst.resources:
            failed = Deployer(t.account, t.region, self.owners).destroy(inst.resources, inst.order)
            if failed:
                # A DeleteStackInstances that fails leaves the instance INOPERABLE (API_StackInstance.html).
                inst.status, inst.detailed, inst.reason = "INOPERABLE", "INOPERABLE", failed[0]
                member_stack_status(inst, "DELETE_FAILED")
                raise DeployError(failed[0])
            member_stack_status(inst, "DELETE_COMPLETE")
        del stackset.instances[(t.account, t.region)]
        self.count("accounts_deleted" if not op.retain_stacks else "accounts_retained")

    # ---- auto-deployment ----

    def on_account_change(self, org: Any, account_id: str) -> None:
        """An account was moved, created, removed or closed in `org`: auto-deployment adds or removes its instance.
        Called inside the moto lock, right after Organizations' own change."""
        from moto.cloudformation.models import cloudformation_backends
        mgmt = org.org.master_account_id if org.org is not None else None
        if mgmt is None or account_id == mgmt:
            return
        acct = next((a for a in org.accounts if a.id == account_id), None)
        above = set(ancestors(org, account_id)) if acct is not None and acct.status == "ACTIVE" else set()
        for region, backend in list(cloudformation_backends[mgmt].items()):
            for stackset in list(getattr(backend, "emulator_stacksets", {}).values()):
                auto = stackset.auto_deployment or {}
                if stackset.status != "ACTIVE" or stackset.permission_model != "SERVICE_MANAGED" or \
                        not auto.get("Enabled") or not stackset.regions:
                    continue
                through = next((ou for ou in stackset.ou_ids if ou in above), None)
                has = [r for r in stackset.regions if (account_id, r) in stackset.instances]
                if through and len(has) < len(stackset.regions):
                    targets = [Target(account_id, r, through) for r in stackset.regions if r not in has]
                    for tg in targets:
                        self.new_instance(stackset, tg)
                    self.begin(stackset, self.auto_operation(stackset, "CREATE", targets))
                elif not through and has:
                    targets = [Target(account_id, r, stackset.instances[(account_id, r)].ou) for r in has]
                    op = self.auto_operation(stackset, "DELETE", targets)
                    op.retain_stacks = bool(auto.get("RetainStacksOnAccountRemoval"))
                    self.begin(stackset, op)

    def auto_operation(self, stackset: StackSet, action: str, targets: list[Target]) -> Operation:
        return Operation(id=str(uuid.uuid4()), action=action, status="RUNNING", targets=targets, prefs={},
                         created=now_utc(), auto=True)

    def new_instance(self, stackset: StackSet, t: Target) -> Instance:
        from moto.cloudformation.utils import generate_stack_id
        key = (t.account, t.region)
        inst = stackset.instances.get(key)
        if inst is None:
            name = f"StackSet-{stackset.name}-{uuid.uuid4()}"
            inst = Instance(t.account, t.region, t.ou, generate_stack_id(name, t.region, t.account), name)
            stackset.instances[key] = inst
        inst.status, inst.detailed, inst.reason = "OUTDATED", "PENDING", None
        return inst

    # ---- stats ----

    def stats(self) -> dict[str, Any]:
        from moto.cloudformation.models import cloudformation_backends
        sets = []
        with self.lock:
            for account, per_region in list(cloudformation_backends.items()):
                for region, backend in list(per_region.items()):
                    for s in list(getattr(backend, "emulator_stacksets", {}).values()):
                        sets.append({
                            "name": s.name, "owner": account, "region": region, "status": s.status,
                            "operations": [{"id": o.id, "action": o.action, "status": o.status, "auto": o.auto}
                                           for o in s.operations.values()],
                            "instances": [{"account": i.account, "region": i.region, "ou": i.ou, "status": i.status,
                                           "detailed": i.detailed, "reason": i.reason}
                                          for i in s.instances.values()],
                        })
            running = sum(1 for _s, o in self.active if o.status in ("RUNNING", "STOPPING"))
            queued = sum(1 for _s, o in self.active if o.status == "QUEUED")
        return {"account_seconds": self.seconds, "running": running, "queued": queued,
                "work": dict(self.counters), "stacksets": sets}

    def reset_counters(self) -> None:
        self.counters = {}


ENGINE: Engine | None = None


# --------------------------------------------------------------------------------------
# The member account's view of its stack (DescribeStacks, ListStackResources there)
# --------------------------------------------------------------------------------------


class StackResource:
    """What moto's stack listing reads of a resource."""

    def __init__(self, made: Made) -> None:
        self.logical_resource_id = made.logical_id
        self.physical_resource_id = made.physical
        self.cf_resource_type = made.rtype

    def is_created(self) -> bool:
        return True


def member_stack(stackset: StackSet, inst: Instance, params: dict[str, str], created: bool) -> None:
    from moto.cloudformation.models import Stack, cloudformation_backends
    backend = cloudformation_backends[inst.account][inst.region]
    stack = backend.stacks.get(inst.stack_id)
    try:
        if stack is None:
            stack = Stack(stack_id=inst.stack_id, name=inst.stack_name, template=stackset.template,
                          parameters={k: v for k, v in params.items()
                                      if k in (stackset.doc.get("Parameters") or {})},
                          account_id=inst.account, region_name=inst.region,
                          tags={t["Key"]: t["Value"] for t in stackset.tags})
            stack._add_stack_event("CREATE_IN_PROGRESS", resource_status_reason="User Initiated")
            backend.stacks[inst.stack_id] = stack
        rmap = stack.resource_map
        rmap._resource_json_map = {lid: stackset.doc["Resources"][lid] for lid in (inst.resources or {})}
        for lid in list(rmap._parsed_resources):
            if lid in stackset.doc["Resources"] or lid in rmap._resource_json_map:
                rmap._parsed_resources.pop(lid, None)
        for lid, made in (inst.resources or {}).items():
            rmap._parsed_resources[lid] = StackResource(made)
        stack.template = stackset.template
        status = "CREATE_COMPLETE" if created else "UPDATE_COMPLETE"
        stack.status = status
        stack._add_stack_event(status)
    except Exception:  # noqa: BLE001 - the member's view is a convenience; the deployment stands
        pass


def member_stack_status(inst: Instance, status: str) -> None:
    from moto.cloudformation.models import cloudformation_backends
    backend = cloudformation_backends[inst.account][inst.region]
    stack = backend.stacks.get(inst.stack_id)
    if stack is None:
        return
    stack.status = status
    try:
        stack._add_stack_event(status)
    except Exception:  # noqa: BLE001
        pass
    if status == "DELETE_COMPLETE":
        backend.stacks.pop(inst.stack_id, None)
        backend.deleted_stacks[inst.stack_id] = stack
    elif inst.resources is not None:
        stack.resource_map._resource_json_map = {lid: {"Type": m.rtype} for lid, m in inst.resources.items()}


# --------------------------------------------------------------------------------------
# The API (methods of moto's CloudFormationResponse; `r` is the response object, inside the moto lock)
# --------------------------------------------------------------------------------------


def engine() -> Engine:
    if ENGINE is None:  # moto used without the emulator (unit use): operations still run, in a worker of their own
        configure(threading.Lock(), DEFAULT_ACCOUNT_SECONDS, start=True)
    return ENGINE  # type: ignore[return-value]


def caller_owner(r: Any, call_as: str | None, service_managed_only: bool = False) -> tuple[str, Any]:
    """(the account whose StackSets the call reads or writes, the caller's organisation backend or None)."""
    caller = r.current_account
    org = org_backend_of(caller)
    if (call_as or "SELF") == "DELEGATED_ADMIN":
        if org is not None and org.org is not None and org.org.master_account_id == caller:
            raise validation(NOT_DELEGATED_ADMIN)
        if org is None or not delegated_admin(org, caller):
            raise validation(NOT_ORG_ADMIN)
        return org.org.master_account_id, org
    return caller, org


def find(r: Any, name: str | None, call_as: str | None = None) -> StackSet:
    owner, _org = caller_owner(r, call_as)
    reg = registry(owner, r.region)
    s = reg.get(name or "")
    if s is None:
        s = next((x for x in reg.values() if x.id == name), None)
    if s is None or s.status != "ACTIVE":
        raise cfn_error("StackSetNotFoundException", f"StackSet {name} not found")
    if (call_as or "SELF") == "DELEGATED_ADMIN" and s.permission_model != "SERVICE_MANAGED":
        raise cfn_error("StackSetNotFoundException", f"StackSet {name} not found")
    return s


def operation_id(r: Any, stackset: StackSet) -> str:
    op_id = r._get_param("OperationId") or str(uuid.uuid4())
    if op_id in stackset.operations:
        raise cfn_error("OperationIdAlreadyExistsException", OPERATION_ID_EXISTS)
    return op_id


def check_not_busy(stackset: StackSet) -> None:
    """OperationInProgressException unless managed execution queues the new operation."""
    if stackset.busy() and not stackset.managed_execution:
        raise cfn_error("OperationInProgressException", f"Another Operation on StackSet {stackset.arn} is in progress")


def preferences(r: Any) -> dict[str, Any]:
    p = r._get_param("OperationPreferences") or {}
    if p.get("FailureToleranceCount") is not None and p.get("FailureTolerancePercentage") is not None:
        raise validation("You must specify either FailureToleranceCount or FailureTolerancePercentage, but not both")
    if p.get("MaxConcurrentCount") is not None and p.get("MaxConcurrentPercentage") is not None:
        raise validation("You must specify either MaxConcurrentCount or MaxConcurrentPercentage, but not both")
    for key, lo, hi in (("FailureToleranceCount", 0, None), ("MaxConcurrentCount", 1, None),
                        ("FailureTolerancePercentage", 0, 100), ("MaxConcurrentPercentage", 1, 100)):
        v = p.get(key)
        if v is not None and (int(v) < lo or (hi is not None and int(v) > hi)):
            raise validation(f"1 validation error detected: Value '{v}' at 'operationPreferences.{key[0].lower()}"
                             f"{key[1:]}' failed to satisfy constraint: Member must have value greater than or equal "
                             f"to {lo}" + (f" and less than or equal to {hi}" if hi is not None else ""))
    return p


def targets_of(r: Any, stackset: StackSet, action: str) -> tuple[list[Target], list[str]]:
    """The accounts and regions a call names, resolved against the organisation; and the OU ids it named."""
    regions = list(r._get_param("Regions") or [])
    dt = r._get_param("DeploymentTargets") or {}
    accounts = list(r._get_param("Accounts") or [])
    if not regions:
        raise validation("Regions should not be empty")
    if stackset.permission_model != "SERVICE_MANAGED":
        accounts = accounts or list(dt.get("Accounts") or [])
        if dt.get("OrganizationalUnitIds"):
            raise validation("StackSets with SELF_MANAGED permission model can only have accounts as target")
        if not accounts:
            raise validation("Accounts should not be empty")
        return [Target(a, rg, "") for rg in regions for a in accounts], []
    ous = list(dt.get("OrganizationalUnitIds") or [])
    if accounts:
        raise validation("StackSets with SERVICE_MANAGED permission model can only have OrganizationalUnit as target")
    if not ous and not (action == "UPDATE" and dt.get("Accounts")):
        raise validation("OrganizationalUnitIds are required")
    if len(ous) > MAX_OUS_PER_CALL:
        raise validation(TOO_MANY_OUS)
    for ou in ous:
        if not re.match(r"^(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}|r-[a-z0-9]{4,32})$", ou):
            raise validation(f"1 validation error detected: Value '[{ou}]' at 'deploymentTargets.organizationalUnitIds' "
                             "failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy regular "
                             "expression pattern: ^(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}|r-[a-z0-9]{4,32})$]")
    org = org_backend_of(stackset.owner)
    listed = list(dt.get("Accounts") or [])
    kind = dt.get("AccountFilterType") or ("UNION" if listed else "NONE")
    reached: dict[str, str] = {}  # account -> the OU it was reached through
    if org is not None:
        mgmt = org.org.master_account_id
        for ou in ous:
            for a in accounts_under(org, ou):
                reached.setdefault(a, ou)
        if kind == "INTERSECTION":
            reached = {a: ou for a, ou in reached.items() if a in listed}
        elif kind == "DIFFERENCE":
            reached = {a: ou for a, ou in reached.items() if a not in listed}
        elif kind == "UNION":
            for a in listed:
                if a != mgmt and a not in reached:
                    above = ancestors(org, a)
                    reached[a] = above[0] if above else ""
        reached.pop(mgmt, None)  # never a target of a service-managed StackSet
    return [Target(a, rg, ou) for rg in regions for a, ou in reached.items()], ous


def summary_instance(i: Instance, s: StackSet) -> dict[str, Any]:
    out = {"StackSetId": s.id, "Region": i.region, "Account": i.account, "StackId": i.stack_id, "Status": i.status,
           "StackInstanceStatus": {"DetailedStatus": i.detailed}, "DriftStatus": "NOT_CHECKED"}
    if i.reason:
        out["StatusReason"] = i.reason
    if s.permission_model == "SERVICE_MANAGED":
        out["OrganizationalUnitId"] = i.ou
    if i.last_operation:
        out["LastOperationId"] = i.last_operation
    return out


def parameters_out(s: StackSet) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in s.parameters.items()]


def api_create_stack_set(r: Any) -> Any:
    from moto.core.responses import ActionResult
    name = r._get_param("StackSetName")
    if not re.match(r"^[a-zA-Z][-a-zA-Z0-9]*$", name or ""):
        raise validation(f"1 validation error detected: Value '{name}' at 'stackSetName' failed to satisfy constraint: "
                         "Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*")
    model = r._get_param("PermissionModel") or "SELF_MANAGED"
    call_as = r._get_param("CallAs")
    owner, org = caller_owner(r, call_as)
    if model == "SERVICE_MANAGED":
        if org is None or (owner == r.current_account and org.org.master_account_id != owner):
            raise validation(NOT_ORG_ADMIN)
        if not trusted_access(org):
            raise validation(NO_TRUSTED_ACCESS)
    token = r._get_param("ClientRequestToken")
    reg = registry(owner, r.region)
    existing = reg.get(name)
    if existing is not None and existing.status == "ACTIVE":
        if token and existing.client_token == token:
            return ActionResult({"StackSetId": existing.id})  # the same request, retried
        raise cfn_error("NameAlreadyExistsException", f"StackSet {name} already exists")  # wording unverified
    body = r._get_param("TemplateBody")
    if not body and r._get_param("TemplateURL"):
        body = r._get_stack_from_s3_url(r._get_param("TemplateURL"))
    if not body:
        raise validation("Either Template URL or Template Body must be specified.")
    doc = parse_template(body)
    capabilities = list(r._get_param("Capabilities") or [])
    check_capabilities(doc, capabilities)
    auto = r._get_param("AutoDeployment")
    if auto and model != "SERVICE_MANAGED":
        raise validation("AutoDeployment is only supported for SERVICE_MANAGED stack sets")  # wording unverified
    auto_deployment = None
    if model == "SERVICE_MANAGED":
        auto_deployment = {"Enabled": bool((auto or {}).get("Enabled")),
                           "RetainStacksOnAccountRemoval": bool((auto or {}).get("RetainStacksOnAccountRemoval"))}
    from moto.cloudformation.utils import generate_stackset_arn, generate_stackset_id
    sid = generate_stackset_id(name)
    s = StackSet(
        name=name, id=sid, arn=generate_stackset_arn(sid, r.region, owner), owner=owner, region=r.region,
        template=body, doc=doc, parameters={p["ParameterKey"]: p["ParameterValue"]
                                            for p in r._get_param("Parameters") or [] if "ParameterValue" in p},
        capabilities=capabilities, tags=tag_list(r._get_param("Tags")), permission_model=model,
        description=r._get_param("Description"),
        auto_deployment=auto_deployment,
        managed_execution=bool((r._get_param("ManagedExecution") or {}).get("Active")),
        admin_role=None if model == "SERVICE_MANAGED" else (
            r._get_param("AdministrationRoleARN")
            or f"arn:{partition_of(r.region)}:iam::{owner}:role/AWSCloudFormationStackSetAdministrationRole"),
        exec_role=None if model == "SERVICE_MANAGED" else (r._get_param("ExecutionRoleName")
                                                          or "AWSCloudFormationStackSetExecutionRole"),
        client_token=token)
    reg[name] = s
    return ActionResult({"StackSetId": s.id})


def check_capabilities(doc: dict[str, Any], capabilities: list[str]) -> None:
    needed = required_capability(doc)
    if needed == "CAPABILITY_NAMED_IAM" and "CAPABILITY_NAMED_IAM" not in capabilities or \
            needed == "CAPABILITY_IAM" and not {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"} & set(capabilities):
        # CreateStack's InsufficientCapabilitiesException and message (wording as CloudFormation answers CreateStack).
        raise cfn_error("InsufficientCapabilitiesException", f"Requires capabilities : [{needed}]")


def api_describe_stack_set(r: Any) -> Any:
    from moto.core.responses import ActionResult
    s = find(r, r._get_param("StackSetName"), r._get_param("CallAs"))
    out: dict[str, Any] = {
        "StackSetName": s.name, "StackSetId": s.id, "Status": s.status, "TemplateBody": s.template,
        "Parameters": parameters_out(s), "Capabilities": s.capabilities, "Tags": s.tags, "StackSetARN": s.arn,
        "PermissionModel": s.permission_model, "ManagedExecution": {"Active": s.managed_execution},
        "OrganizationalUnitIds": list(s.ou_ids), "Regions": list(s.regions),
        "StackSetDriftDetectionDetails": {"DriftStatus": "NOT_CHECKED"},
    }
    if s.description is not None:
        out["Description"] = s.description
    if s.auto_deployment is not None:
        out["AutoDeployment"] = dict(s.auto_deployment)
    if s.admin_role:
        out["AdministrationRoleARN"], out["ExecutionRoleName"] = s.admin_role, s.exec_role
    return ActionResult({"StackSet": out})


def api_list_stack_sets(r: Any) -> Any:
    from moto.core.responses import ActionResult
    call_as = r._get_param("CallAs")
    owner, _org = caller_owner(r, call_as)
    status = r._get_param("Status")
    out = []
    for s in registry(owner, r.region).values():
        if status and s.status != status:
            continue
        if (call_as or "SELF") == "DELEGATED_ADMIN" and s.permission_model != "SERVICE_MANAGED":
            continue
        item = {"StackSetName": s.name, "StackSetId": s.id, "Status": s.status, "PermissionModel": s.permission_model,
                "DriftStatus": "NOT_CHECKED", "ManagedExecution": {"Active": s.managed_execution}}
        if s.description is not None:
            item["Description"] = s.description
        if s.auto_deployment is not None:
            item["AutoDeployment"] = dict(s.auto_deployment)
        out.append(item)
    return ActionResult({"Summaries": out})


def api_create_stack_instances(r: Any) -> Any:
    from moto.core.responses import ActionResult
    s = find(r, r._get_param("StackSetName"), r._get_param("CallAs"))
    op_id = operation_id(r, s)
    prefs = preferences(r)
    targets, ous = targets_of(r, s, "CREATE")
    check_not_busy(s)
    overrides = list(r._get_param("ParameterOverrides") or [])
    eng = engine()
    for t in targets:
        inst = eng.new_instance(s, t)
        if overrides:
            inst.overrides = overrides
    for ou in ous:
        if ou not in s.ou_ids:
            s.ou_ids.append(ou)
    for region in r._get_param("Regions") or []:
        if region not in s.regions:
            s.regions.append(region)
    op = Operation(id=op_id, action="CREATE", status="RUNNING", targets=targets, prefs=prefs, created=now_utc(),
                   deployment_targets=r._get_param("DeploymentTargets"), overrides=overrides or None)
    eng.begin(s, op)
    return ActionResult({"OperationId": op_id})


def api_update_stack_set(r: Any) -> Any:
    from moto.core.responses import ActionResult
    s = find(r, r._get_param("StackSetName"), r._get_param("CallAs"))
    op_id = operation_id(r, s)
    prefs = preferences(r)
    managed = r._get_param("ManagedExecution")
    if managed is not None and bool(managed.get("Active")) != s.managed_execution and s.busy():
        # "You can't modify your StackSet's execution configuration while there are running or queued operations"
        raise cfn_error("OperationInProgressException", f"Another Operation on StackSet {s.arn} is in progress")
    check_not_busy(s)
    if r._get_param("UsePreviousTemplate"):
        body, doc = s.template, s.doc
    else:
        body = r._get_param("TemplateBody")
        if not body and r._get_param("TemplateURL"):
            body = r._get_stack_from_s3_url(r._get_param("TemplateURL"))
        if not body:
            raise validation("Either Template URL or Template Body must be specified.")
        doc = parse_template(body)
    capabilities = list(r._get_param("Capabilities") or [])
    check_capabilities(doc, capabilities)
    params: dict[str, str] = {}
    for p in r._get_param("Parameters") or []:
        if p.get("UsePreviousValue"):
            if p["ParameterKey"] in s.parameters:
                params[p["ParameterKey"]] = s.parameters[p["ParameterKey"]]
        elif "ParameterValue" in p:
            params[p["ParameterKey"]] = p["ParameterValue"]
    # Restricting the update to some instances (DeploymentTargets or Accounts, with Regions).
    dt = r._get_param("DeploymentTargets")
    if dt or r._get_param("Accounts"):
        chosen, _ous = targets_of(r, s, "UPDATE")
        if s.permission_model == "SERVICE_MANAGED" and dt and dt.get("Accounts") and not dt.get("OrganizationalUnitIds"):
            chosen = [Target(a, rg, "") for rg in r._get_param("Regions") or [] for a in dt["Accounts"]]
        keys = {(t.account, t.region) for t in chosen}
        targets = [Target(i.account, i.region, i.ou) for k, i in s.instances.items() if k in keys]
        missing = keys - set(s.instances)
        if missing and s.permission_model != "SERVICE_MANAGED":
            raise cfn_error("StackInstanceNotFoundException", "The specified stack instance doesn't exist.")
    else:
        targets = [Target(i.account, i.region, i.ou) for i in s.instances.values()]
    s.template, s.doc, s.parameters, s.capabilities = body, doc, params, capabilities
    if r._get_param("Tags") is not None:
        s.tags = tag_list(r._get_param("Tags"))
    if r._get_param("Description") is not None:
        s.description = r._get_param("Description")
    auto = r._get_param("AutoDeployment")
    if auto is not None and s.permission_model == "SERVICE_MANAGED":
        s.auto_deployment = {"Enabled": bool(auto.get("Enabled", s.auto_deployment and s.auto_deployment["Enabled"])),
                             "RetainStacksOnAccountRemoval": bool(auto.get(
                                 "RetainStacksOnAccountRemoval",
                                 s.auto_deployment and s.auto_deployment["RetainStacksOnAccountRemoval"]))}
    if managed is not None:
        s.managed_execution = bool(managed.get("Active"))
    s.version += 1
    # Every instance is now behind the StackSet until the update reaches it; those it does not target stay so
    # (OUTDATED, DetailedStatus PENDING: aws-cloudformation/cloudformation-coverage-roadmap#1751).
    for inst in s.instances.values():
        inst.status, inst.detailed = "OUTDATED", "PENDING"
    op = Operation(id=op_id, action="UPDATE", status="RUNNING", targets=targets, prefs=prefs, created=now_utc(),
                   deployment_targets=dt)
    engine().begin(s, op)
    return ActionResult({"OperationId": op_id})


def api_update_stack_instances(r: Any) -> Any:
    from moto.core.responses import ActionResult
    s = find(r, r._get_param("StackSetName"), r._get_param("CallAs"))
    op_id = operation_id(r, s)
    prefs = preferences(r)
    chosen, _ous = targets_of(r, s, "UPDATE")
    check_not_busy(s)
    keys = [(t.account, t.region) for t in chosen]
    if s.permission_model != "SERVICE_MANAGED" and any(k not in s.instances for k in keys):
        raise cfn_error("StackInstanceNotFoundException", "The specified stack instance doesn't exist.")
    overrides = list(r._get_param("ParameterOverrides") or [])
    declared = set((s.doc.get("Parameters") or {}))
    unknown = [o["ParameterKey"] for o in overrides if o["ParameterKey"] not in declared]
    if unknown:
        raise validation(f"Parameters: {unknown} do not exist in the template")  # wording unverified
    targets = []
    for k in keys:
        inst = s.instances.get(k)
        if inst is None:
            continue
        inst.overrides = [o for o in overrides if not o.get("UsePreviousValue")] + \
            [o for o in inst.overrides if any(x.get("UsePreviousValue") and x["ParameterKey"] == o["ParameterKey"]
                                              for x in overrides)]
        inst.status, inst.detailed = "OUTDATED", "PENDING"
        targets.append(Target(inst.account, inst.region, inst.ou))
    op = Operation(id=op_id, action="UPDATE", status="RUNNING", targets=targets, prefs=prefs, created=now_utc(),
                   deployment_targets=r._get_param("DeploymentTargets"))
    engine().begin(s, op)
    return ActionResult({"OperationId": op_id})


def api_delete_stack_instances(r: Any) -> Any:
    from moto.core.responses import ActionResult
    s = find(r, r._get_param("StackSetName"), r._get_param("CallAs"))
    op_id = operation_id(r, s)
    prefs = preferences(r)
    retain = r._get_param("RetainStacks")
    if retain is None:
        raise validation("1 validation error detected: Value null at 'retainStacks' failed to satisfy constraint: "
                         "Member must not be null")
    chosen, ous = targets_of(r, s, "DELETE")
    check_not_busy(s)
    if s.permission_model == "SERVICE_MANAGED":
        # The instances that came from these OUs (the accounts may have moved since).
        regions = set(r._get_param("Regions") or [])
        listed = set((r._get_param("DeploymentTargets") or {}).get("Accounts") or [])
        kind = (r._get_param("DeploymentTargets") or {}).get("AccountFilterType") or ("UNION" if listed else "NONE")
        keys = {(t.account, t.region) for t in chosen}
        for inst in s.instances.values():
            if inst.region in regions and inst.ou in ous:
                if kind == "INTERSECTION" and inst.account not in listed or \
                        kind == "DIFFERENCE" and inst.account in listed:
                    continue
                keys.add((inst.account, inst.region))
        if kind in ("NONE", "UNION", None):
            s.ou_ids = [ou for ou in s.ou_ids if ou not in ous]
    else:
        keys = {(t.account, t.region) for t in chosen}
    targets = [Target(a, rg, s.instances[(a, rg)].ou) for (a, rg) in sorted(keys) if (a, rg) in s.instances]
    for t in targets:
        s.instances[(t.account, t.region)].detailed = "PENDING"
    op = Operation(id=op_id, action="DELETE", status="RUNNING", targets=targets, prefs=prefs, created=now_utc(),
                   deployment_targets=r._get_param("DeploymentTargets"), retain_stacks=bool(retain))
    engine().begin(s, op)
    return ActionResult({"OperationId": op_id})


def api_delete_stack_set(r: Any) -> Any:
    from moto.core.responses import EmptyResult
    s = find(r, r._get_param("StackSetName"), r._get_param("CallAs"))
    if s.busy():
        raise cfn_error("OperationInProgressException", f"Another Operation on StackSet {s.arn} is in progress")
    if s.instances:
        raise cfn_error("StackSetNotEmptyException", STACKSET_NOT_EMPTY)
    s.status = "DELETED"  # still listed with ListStackSets Status=DELETED; no longer found by name
    reg = registry(s.owner, s.region)
    reg.pop(s.name, None)
    reg[f"{s.name}#deleted#{s.id}"] = s
    return EmptyResult()


def api_describe_stack_instance(r: Any) -> Any:
    from moto.core.responses import ActionResult
    s = find(r, r._get_param("StackSetName"), r._get_param("CallAs"))
    inst = s.instances.get((r._get_param("StackInstanceAccount"), r._get_param("StackInstanceRegion")))
    if inst is None:
        raise cfn_error("StackInstanceNotFoundException", "The specified stack instance doesn't exist.")
    out = summary_instance(inst, s)
    out["ParameterOverrides"] = list(inst.overrides)
    return ActionResult({"StackInstance": out})


def paged(r: Any, items: list[Any]) -> tuple[list[Any], str | None]:
    start = int(r._get_param("NextToken") or 0)
    size = int(r._get_param("MaxResults") or 100)
    page = items[start:start + size]
    return page, (str(start + size) if start + size < len(items) else None)


def api_list_stack_instances(r: Any) -> Any:
    from moto.core.responses import ActionResult
    s = find(r, r._get_param("StackSetName"), r._get_param("CallAs"))
    account, region = r._get_param("StackInstanceAccount"), r._get_param("StackInstanceRegion")
    filters = r._get_param("Filters") or []
    items = []
    for inst in s.instances.values():
        if account and inst.account != account or region and inst.region != region:
            continue
        ok = True
        for f in filters:
            value = f.get("Values")
            if f.get("Name") == "DETAILED_STATUS" and inst.detailed != value:
                ok = False
            elif f.get("Name") == "LAST_OPERATION_ID" and inst.last_operation != value:
                ok = False
            elif f.get("Name") == "DRIFT_STATUS" and value != "NOT_CHECKED":
                ok = False
        if ok:
            items.append(summary_instance(inst, s))
    page, token = paged(r, items)
    out: dict[str, Any] = {"Summaries": page}
    if token:
        out["NextToken"] = token
    return ActionResult(out)


def find_operation(r: Any) -> tuple[StackSet, Operation]:
    s = find(r, r._get_param("StackSetName"), r._get_param("CallAs"))
    op = s.operations.get(r._get_param("OperationId"))
    if op is None:
        raise cfn_error("OperationNotFoundException", f"Operation {r._get_param('OperationId')} not found")
    return s, op


def operation_out(s: StackSet, op: Operation, summary: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"OperationId": op.id, "Action": op.action, "Status": op.status,
                           "CreationTimestamp": op.created,
                           "StatusDetails": {"FailedStackInstancesCount": sum(
                               1 for x in op.results.values() if x["Status"] == "FAILED")}}
    if op.ended:
        out["EndTimestamp"] = op.ended
    if op.status_reason:
        out["StatusReason"] = op.status_reason
    if op.prefs:
        out["OperationPreferences"] = op.prefs
    if summary:
        return out
    out["StackSetId"] = s.id
    if op.retain_stacks is not None:
        out["RetainStacks"] = op.retain_stacks
    if op.deployment_targets:
        out["DeploymentTargets"] = op.deployment_targets
    if s.admin_role:
        out["AdministrationRoleARN"], out["ExecutionRoleName"] = s.admin_role, s.exec_role
    return out


def api_describe_stack_set_operation(r: Any) -> Any:
    from moto.core.responses import ActionResult
    s, op = find_operation(r)
    return ActionResult({"StackSetOperation": operation_out(s, op)})


def api_list_stack_set_operations(r: Any) -> Any:
    from moto.core.responses import ActionResult
    s = find(r, r._get_param("StackSetName"), r._get_param("CallAs"))
    page, token = paged(r, [operation_out(s, op, summary=True) for op in s.operations.values()])
    out: dict[str, Any] = {"Summaries": page}
    if token:
        out["NextToken"] = token
    return ActionResult(out)


def api_list_stack_set_operation_results(r: Any) -> Any:
    from moto.core.responses import ActionResult
    s, op = find_operation(r)
    items = []
    for (account, region), res in op.results.items():
        item = {"Account": account, "Region": region, "Status": res["Status"],
                "AccountGateResult": {"Status": "SKIPPED", "StatusReason": ACCOUNT_GATE_SKIPPED.format(
                    partition=partition_of(region), region=region, account=account)}}
        if res.get("StatusReason"):
            item["StatusReason"] = res["StatusReason"]
        if s.permission_model == "SERVICE_MANAGED":
            item["OrganizationalUnitId"] = res.get("ou", "")
        items.append(item)
    page, token = paged(r, items)
    out: dict[str, Any] = {"Summaries": page}
    if token:
        out["NextToken"] = token
    return ActionResult(out)


def api_stop_stack_set_operation(r: Any) -> Any:
    from moto.core.responses import EmptyResult
    _s, op = find_operation(r)
    if op.status not in ("RUNNING", "QUEUED"):
        raise cfn_error("InvalidOperationException", f"Operation {op.id} is not running")  # wording unverified
    op.stop = True
    if op.status == "QUEUED":  # never started: stopped at once, every account cancelled
        eng = engine()
        eng.cancel_rest(_s, op)
        eng.finish(_s, op, stopped=True)
    else:
        op.status = "STOPPING"
        engine().wake.set()
    return EmptyResult()


def org_admin(r: Any) -> Any:
    """The caller's organisation backend if it may manage trusted access (the management account, or a delegated
    administrator with CallAs=DELEGATED_ADMIN)."""
    owner, org = caller_owner(r, r._get_param("CallAs"))
    if org is None or org.org.master_account_id != owner:
        raise validation(NOT_ORG_ADMIN)
    return org


def api_describe_organizations_access(r: Any) -> Any:
    from moto.core.responses import ActionResult
    org = org_admin(r)
    return ActionResult({"Status": "ENABLED" if trusted_access(org) else "DISABLED"})


def api_activate_organizations_access(r: Any) -> Any:
    from moto.core.responses import EmptyResult
    org = org_admin(r)
    if r._get_param("CallAs") == "DELEGATED_ADMIN":
        raise validation(NOT_ORG_ADMIN)
    org.enable_aws_service_access(ServicePrincipal=TRUSTED_ACCESS_PRINCIPAL)
    return EmptyResult()


def api_deactivate_organizations_access(r: Any) -> Any:
    from moto.core.responses import EmptyResult
    org = org_admin(r)
    if r._get_param("CallAs") == "DELEGATED_ADMIN":
        raise validation(NOT_ORG_ADMIN)
    org.disable_aws_service_access(ServicePrincipal=TRUSTED_ACCESS_PRINCIPAL)
    return EmptyResult()


def describe_stack_resources_by_physical_id(r: Any, original: Callable[[Any], Any]) -> Any:
    """DescribeStackResources with PhysicalResourceId and no StackName answers the resources of the stack that owns
    that resource ("You can pass the EC2 InstanceId to DescribeStackResources to find which stack the instance belongs
    to and what other resources are part of the stack", API_DescribeStackResources.html): the question a member
    account asks to tell a resource CloudFormation owns from a hand-made one. moto required StackName."""
    from moto.core.responses import ActionResult
    from moto.cloudformation.responses import StackResourceDTO
    physical = r._get_param("PhysicalResourceId")
    if not physical or r._get_param("StackName"):
        return original(r)
    for stack in list(r.cloudformation_backend.stacks.values()):
        resources = list(stack.stack_resources)
        if any(getattr(res, "physical_resource_id", None) == physical for res in resources):
            wanted = r._get_param("LogicalResourceId")
            return ActionResult({"StackResources": [StackResourceDTO(stack, res) for res in resources
                                                    if res is not None and (not wanted or res.logical_resource_id == wanted)]})
    raise validation(f"Stack for {physical} does not exist")  # wording unverified


API = {
    "create_stack_set": api_create_stack_set,
    "describe_stack_set": api_describe_stack_set,
    "list_stack_sets": api_list_stack_sets,
    "update_stack_set": api_update_stack_set,
    "delete_stack_set": api_delete_stack_set,
    "create_stack_instances": api_create_stack_instances,
    "update_stack_instances": api_update_stack_instances,
    "delete_stack_instances": api_delete_stack_instances,
    "describe_stack_instance": api_describe_stack_instance,
    "list_stack_instances": api_list_stack_instances,
    "describe_stack_set_operation": api_describe_stack_set_operation,
    "list_stack_set_operations": api_list_stack_set_operations,
    "list_stack_set_operation_results": api_list_stack_set_operation_results,
    "stop_stack_set_operation": api_stop_stack_set_operation,
    "describe_organizations_access": api_describe_organizations_access,
    "activate_organizations_access": api_activate_organizations_access,
    "deactivate_organizations_access": api_deactivate_organizations_access,
}


# --------------------------------------------------------------------------------------
# Installing it into moto
# --------------------------------------------------------------------------------------


def install() -> None:
    """Replaces moto's StackSet actions and hooks Organizations' account changes; before moto's app is built."""
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.organizations import models as org_models

    for action, fn in API.items():
        def method(self, __fn=fn):  # type: ignore[no-untyped-def]
            return __fn(self)
        method.__name__ = action
        setattr(CloudFormationResponse, action, method)
    original_describe = CloudFormationResponse.describe_stack_resources

    def describe_stack_resources(self):  # type: ignore[no-untyped-def]
        return describe_stack_resources_by_physical_id(self, original_describe)
    CloudFormationResponse.describe_stack_resources = describe_stack_resources
    # moto's own StackSet result transformers would rewrite these lists.
    for key in ("DescribeStackSetOutput.StackSet.Parameters", "DescribeStackSetOutput.StackSet.Tags"):
        CloudFormationResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER.pop(key, None)

    # The StackSets principal may be a delegated administrator (CloudFormation User Guide, "Register a delegated
    # administrator": register-delegated-administrator --service-principal=member.org.stacksets.cloudformation.amazonaws.com,
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/stacksets-orgs-delegated-admin.html).
    supported = org_models.FakeDelegatedAdministrator.SUPPORTED_SERVICES
    if TRUSTED_ACCESS_PRINCIPAL not in supported:
        supported.append(TRUSTED_ACCESS_PRINCIPAL)

    backend = org_models.OrganizationsBackend

    def hooked(name: str, account_of: Callable[[Any, dict[str, Any]], str | None]) -> None:
        original = getattr(backend, name)

        def wrapper(self, *args, __original=original, **kwargs):  # type: ignore[no-untyped-def]
            result = __original(self, *args, **kwargs)
            account = account_of(result, kwargs)
            if account and ENGINE is not None:
                try:
                    ENGINE.on_account_change(self, account)
                except Exception as e:  # noqa: BLE001 - Organizations' answer stands
                    ENGINE.log(f"stacksets auto-deployment after {name}: {e!r}")
            return result

        setattr(backend, name, wrapper)

    hooked("move_account", lambda _res, kw: kw.get("AccountId"))
    hooked("create_account", lambda res, _kw: res["CreateAccountStatus"]["AccountId"])
    hooked("close_account", lambda _res, kw: kw.get("AccountId"))
    hooked("remove_account_from_organization", lambda _res, kw: kw.get("AccountId"))


def configure(moto_lock: Any, account_seconds: float, log: Callable[[str], None] | None = None,
              start: bool = True) -> Engine:
    """The engine the API uses, with the emulator's moto lock (held by every request and by each step of the work)."""
    global ENGINE
    if ENGINE is not None:
        ENGINE.stop()
    ENGINE = Engine(moto_lock, account_seconds, log)
    if start:
        ENGINE.start()
    return ENGINE


def add_arguments(p: Any) -> None:
    g = p.add_argument_group("CloudFormation StackSets (tools/stacksets.py)")
    g.add_argument("--stackset-account-seconds", type=float, default=DEFAULT_ACCOUNT_SECONDS, metavar="SECONDS",
                   help="how long a StackSet operation takes per account (a wave of concurrent accounts takes this "
                        f"long; default {DEFAULT_ACCOUNT_SECONDS:g})")


__all__ = ["install", "configure", "add_arguments", "Engine", "ENGINE", "TRUSTED_ACCESS_PRINCIPAL"]
