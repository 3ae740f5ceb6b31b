"""Corrections to moto that the emulator (tools/emulator.py) applies before serving.

Signature checks of requests without a body. With IAM enforcement on (INITIAL_NO_AUTH_ACTION_COUNT reached), moto
recomputes each request's SigV4 signature. For the payload it takes the raw body or, when that is empty, its own
parsed view of the request (moto/iam/access_control.py, IAMRequestBase._create_aws_request:
`data=self._body or self._data`): for a GET such as lambda:ListFunctions that is the parsed query string, or even
the headers, so the payload hash never matches the empty payload the client signed, and every bodiless REST
request fails with SignatureDoesNotMatch, as an XML error on a rest-json service (no x-amzn-ErrorType header, so
the Rust SDK reads no error code from it). SigV4 signs an empty payload as the hash of the empty string
(https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html), so a request without a body
(Content-Length absent or 0) is checked against the empty payload; requests with a body are checked as before.

EC2's answer about an instance profile. RunInstances (a dry run too), AssociateIamInstanceProfile and
ReplaceIamInstanceProfileAssociation naming a profile that does not exist got IAM's own error from moto (HTTP 404
NoSuchEntity "Instance profile X not found"), and a profile without a role was accepted. EC2 answers both with
InvalidParameterValue (HTTP 400): "Value (X) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance
Profile name" (".arn ... Invalid IAM Instance Profile ARN" for an ARN) and `IAM Instance Profile "ARN" has no
associated IAM Roles` -- the same answers EC2 gives while it has not seen a new profile or its role yet, which is
why terraform-provider-aws internal/service/ec2/ec2_instance.go retries InvalidParameterValue with "Invalid IAM
Instance Profile" (and its spot request code " has no associated IAM Roles"). tools/realism.py gives the same
errors for the window after a profile's create (--ec2-lag).

The region of a role's last use (fix_role_last_used_region).

Finding the account of an access key without creating IAM backends (fix_account_lookup), and the AWS managed policies
of a new account's IAM backend built from one parse of moto's data (fix_aws_managed_policies_parse).

Organizations reads from a member account (fix_organizations_member_reads).

An instance's metadata options (fix_instance_metadata_options) and the account's defaults for new instances
(add_instance_metadata_defaults).
"""

from __future__ import annotations

from typing import Any


def apply() -> None:
    fix_account_lookup()
    fix_aws_managed_policies_parse()
    fix_bodiless_signatures()
    fix_ec2_instance_profile_errors()
    fix_role_last_used_region()
    fix_organizations_member_reads()
    fix_instance_metadata_options()
    add_instance_metadata_defaults()


# ModifyInstanceMetadataOptions' and RunInstances' MetadataOptions members, by moto's MetadataOptions keys.
METADATA_OPTIONS = ("HttpTokens", "HttpPutResponseHopLimit", "HttpEndpoint", "HttpProtocolIpv6", "InstanceMetadataTags")


def fix_instance_metadata_options() -> None:
    """ModifyInstanceMetadataOptions changes only what it names: "If no parameter is specified, the existing state is
    maintained" (EC2 API reference, ModifyInstanceMetadataOptions, HttpPutResponseHopLimit and HttpEndpoint:
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyInstanceMetadataOptions.html). moto built new
    options from the request alone, so `--http-tokens required` reset the hop limit to 1 and left the endpoint, IPv6
    and tags options empty (absent from DescribeInstances)."""
    from moto.ec2.models import instances

    def modify_instance_metadata_options(self, instance_id, http_tokens=None, hop_limit=None, http_endpoint=None,
                                         dry_run=False, http_protocol=None, metadata_tags=None):
        instance = self.get_instance(instance_id)
        old = instance.metadata_options
        asked = {"HttpTokens": http_tokens, "HttpPutResponseHopLimit": hop_limit, "HttpEndpoint": http_endpoint,
                 "HttpProtocolIpv6": http_protocol, "InstanceMetadataTags": metadata_tags}
        kept = {"HttpTokens": old.http_tokens, "HttpPutResponseHopLimit": old.http_put_response_hop_limit,
                "HttpEndpoint": old.http_endpoint, "HttpProtocolIpv6": old.http_protocol_ipv6,
                "InstanceMetadataTags": old.instance_metadata_tags}
        options = {k: (asked[k] if asked[k] is not None else kept[k]) for k in METADATA_OPTIONS}
        instance.metadata_options = instances.MetadataOptions({"State": "applied", **options})
        return instance.metadata_options

    instances.InstanceBackend.modify_instance_metadata_options = modify_instance_metadata_options


def add_instance_metadata_defaults() -> None:
    """ec2:GetInstanceMetadataDefaults and ModifyInstanceMetadataDefaults, which moto lacks (it answered HTTP 500,
    "not implemented"): the account's IMDS defaults for new instances, per account and region. Modify sets each option
    it names, `no-preference` (a hop limit of -1) clears one, and answers `true`; Get answers the options set, none
    when nothing is (EC2 API reference, https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetInstanceMetadataDefaults.html,
    API_ModifyInstanceMetadataDefaults.html). A new instance takes a default for each option its launch does not set
    ("Order of precedence for instance metadata options", EC2 user guide,
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-options.html#instance-metadata-options-order-of-precedence;
    the AMI's ImdsSupport and launch templates, which come between, are not modelled)."""
    from moto.core.responses import ActionResult
    from moto.ec2.models import instances
    from moto.ec2.responses import EC2Response

    def defaults(backend) -> dict:
        if not hasattr(backend, "wfboot_metadata_defaults"):
            backend.wfboot_metadata_defaults = {}
        return backend.wfboot_metadata_defaults

    def get_instance_metadata_defaults(self):
        return ActionResult({"AccountLevel": dict(defaults(self.ec2_backend))})

    def modify_instance_metadata_defaults(self):
        current = defaults(self.ec2_backend)
        for key in ("HttpTokens", "HttpEndpoint", "InstanceMetadataTags", "HttpTokensEnforced"):
            value = self._get_param(key)
            if value == "no-preference":
                current.pop(key, None)
            elif value is not None:
                current[key] = value
        hops = self._get_int_param("HttpPutResponseHopLimit")
        if hops == -1:
            current.pop("HttpPutResponseHopLimit", None)
        elif hops is not None:
            current["HttpPutResponseHopLimit"] = hops
        return ActionResult({"Return": True})

    EC2Response.get_instance_metadata_defaults = get_instance_metadata_defaults
    EC2Response.modify_instance_metadata_defaults = modify_instance_metadata_defaults

    original_init = instances.Instance.__init__

    def init(self, ec2_backend, *args, **kwargs):
        asked = dict(kwargs.get("metadata_options") or {})
        for key, value in getattr(ec2_backend, "wfboot_metadata_defaults", {}).items():
            if key in METADATA_OPTIONS and asked.get(key) is None:
                asked[key] = value
        kwargs["metadata_options"] = asked
        original_init(self, ec2_backend, *args, **kwargs)

    instances.Instance.__init__ = init


# The Organizations reads "called only from the organization's management account or by a member account that is a
# delegated administrator" (the sentence of each one's page in the Organizations API reference).
MEMBER_READS = ("describe_account", "describe_organizational_unit", "describe_policy", "list_accounts",
                "list_accounts_for_parent", "list_aws_service_access_for_organization", "list_children",
                "list_delegated_administrators", "list_delegated_services_for_account",
                "list_organizational_units_for_parent", "list_parents", "list_policies", "list_policies_for_target",
                "list_roots", "list_targets_for_policy")


def fix_organizations_member_reads() -> None:
    """The organisation's reads from a member account. Each of MEMBER_READS "can be called only from the
    organization's management account or by a member account that is a delegated administrator" ("for an Amazon Web
    Services service" in earlier editions; Organizations API reference, e.g.
    https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListAccountsForParent.html), and a delegated
    administrator is registered for one or more services, any of them (RegisterDelegatedAdministrator: "It grants
    read-only access to Organizations service data",
    https://docs.aws.amazon.com/organizations/latest/APIReference/API_RegisterDelegatedAdministrator.html).

    moto kept one backend per account and looked every id up in the caller's own: from a member account (whose
    backend is empty) ListAccountsForParent answered ParentNotFoundException, ListPoliciesForTarget
    TargetNotFoundException, ListDelegatedAdministrators an empty list, ListAWSServiceAccessForOrganization none, and
    so on, delegated administrator or not. Now a member registered as a delegated administrator (for any service) is
    answered from its management account's organisation; any other member gets AccessDeniedException, as AWS answers
    ("You don't have permissions to access this resource.", Organizations API reference, Common errors); an account in
    no organisation gets AWSOrganizationsNotInUseException. DescribeOrganization stays answered to every member (moto
    reads the management account's; its page has no such sentence)."""
    from moto.organizations import exceptions, models

    class AccessDeniedException(exceptions.OrganizationsClientError):
        def __init__(self) -> None:
            super().__init__("AccessDeniedException", "You don't have permissions to access this resource.")

    # moto's serializer finds the service's error shapes from the exception's module (moto.<service>.exceptions).
    AccessDeniedException.__module__ = exceptions.__name__

    def management_backend(member: str) -> Any:
        """The backend of `member`'s organisation (its management account's) when `member` is a delegated
        administrator there, else None."""
        where = models.organizations_backends.master_accounts.get(member)
        if where is None:
            return None
        management = models.organizations_backends[where[0]][where[1]]
        if management.org is None:
            return None
        registered = any(a.account.id == member and a.services for a in management.admins)
        return management if registered else None

    backend = models.OrganizationsBackend
    for name in MEMBER_READS:
        original = getattr(backend, name)

        def guarded(self, *args, __original=original, **kwargs):  # type: ignore[no-untyped-def]
            if self.org is None:
                if self.account_id in models.organizations_backends.master_accounts:
                    management = management_backend(self.account_id)
                    if management is None:
                        raise AccessDeniedException()
                    return __original(management, *args, **kwargs)
                raise exceptions.AWSOrganizationsNotInUseException()
            return __original(self, *args, **kwargs)

        setattr(backend, name, guarded)


def fix_account_lookup() -> None:
    """moto finds the account of every request's access key by looking in each account's IAM backend of each
    partition (moto/iam/models.py, get_account_id_from); looking one up creates it, and an IAM backend loads the ~1,600
    AWS managed policies (MOTO_IAM_LOAD_MANAGED_POLICIES). So the first request after an organisation gained an account
    built two more IAM backends for that account (aws-cn, aws-us-gov): about 0.5 s per new account, on one request.
    An access key can only be in a backend that exists: only those are looked in. Same answers, without the cost."""
    from moto.iam import models

    def get_account_id_from(access_key: str) -> str:
        for account_id, account in list(models.iam_backends.items()):
            for backend in list(account.values()):
                if access_key in backend.access_keys:
                    return account_id
        return models.DEFAULT_ACCOUNT_ID

    models.get_account_id_from = get_account_id_from


def fix_aws_managed_policies_parse() -> None:
    """Each new IAM backend (one per account) parsed moto's JSON of the ~1,600 AWS managed policies again and
    re-serialised every policy document (moto/iam/models.py, IAMBackend._init_aws_policies): about 0.15 s of an
    organisation account's creation. The parse and the documents are made once and shared (strings and datetimes,
    immutable); each account still gets policy objects of its own (attachment counts, ids), as before."""
    import json
    from datetime import datetime

    from moto.iam import models

    parsed: list[tuple[str, dict]] = []

    def _init_aws_policies(self):  # type: ignore[no-untyped-def]
        if not models.load_iam_aws_managed_policies():
            return []
        if not parsed:
            for name, d in json.loads(models.aws_managed_policies_data).items():
                parsed.append((name, {
                    "default_version_id": d.get("DefaultVersionId"), "path": d.get("Path"),
                    "document": json.dumps(d.get("Document")),
                    "create_date": datetime.fromisoformat(d["CreateDate"]),
                    "update_date": datetime.fromisoformat(d["UpdateDate"]),
                }))
        return [models.AWSManagedPolicy(name, account_id=self.account_id, region=self.region_name, **kw)
                for name, kw in parsed]

    models.IAMBackend._init_aws_policies = _init_aws_policies


def fix_role_last_used_region() -> None:
    """GetRole's RoleLastUsed names the region the role was last used in (IAM API reference, RoleLastUsed:
    https://docs.aws.amazon.com/IAM/latest/APIReference/API_RoleLastUsed.html); moto records the date of a
    session's request but leaves the region empty. The region of that request is recorded too."""
    from moto.iam import models

    original = models.mark_account_as_visited

    def mark_account_as_visited(account_id: str, access_key: str, service: str, region: str) -> None:
        original(account_id, access_key, service, region)
        try:
            account = models.iam_backends[account_id][models.get_partition(region)]
            key = account.access_keys.get(access_key)
            if key is not None and key.role_arn:
                account.get_role_by_arn(key.role_arn).last_used_region = region
        except Exception:  # noqa: BLE001 - a role that does not exist (any more) has nothing to record
            pass

    models.mark_account_as_visited = mark_account_as_visited


def fix_bodiless_signatures() -> None:
    from botocore.awsrequest import AWSRequest
    from moto.iam import access_control

    base = access_control.IAMRequestBase

    def create_aws_request(self) -> AWSRequest:
        signed_headers = self._get_string_between("SignedHeaders=", ",", self._headers["Authorization"]).split(";")
        headers = self._create_headers_for_aws_request(signed_headers, self._headers)
        # moto's own view stays for a body it consumed while parsing a form (self._body empty, Content-Length not).
        sent = self._headers.get("Content-Length") or self._headers.get("content-length") or "0"
        data = self._body or (self._data if sent.strip() != "0" else b"")
        request = AWSRequest(method=self._method, url=self._path, data=data, headers=headers)
        request.context["timestamp"] = headers["X-Amz-Date"]
        return request

    base._create_aws_request = create_aws_request


def profile_not_found(name: str | None, arn: str | None) -> tuple[str, str]:
    """EC2's InvalidParameterValue (code, message) for a profile it does not know, by ARN when one was given."""
    if arn:
        return "InvalidParameterValue", (f"Value ({arn}) for parameter iamInstanceProfile.arn is invalid. "
                                         "Invalid IAM Instance Profile ARN")
    return "InvalidParameterValue", (f"Value ({name}) for parameter iamInstanceProfile.name is invalid. "
                                     "Invalid IAM Instance Profile name")


def profile_without_role(arn: str) -> tuple[str, str]:
    return "InvalidParameterValue", f'IAM Instance Profile "{arn}" has no associated IAM Roles'


def fix_ec2_instance_profile_errors() -> None:
    # moto resolves the profile of all three actions with moto.ec2.utils.filter_iam_instance_profiles, imported by
    # name into the modules that call it: each module's reference is replaced.
    from moto.ec2 import utils
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models import iam_instance_profile
    from moto.ec2.responses import instances
    from moto.iam.exceptions import NotFoundException

    original = utils.filter_iam_instance_profiles

    def filter_iam_instance_profiles(account_id, partition, iam_instance_profile_arn, iam_instance_profile_name):
        try:
            profile = original(account_id, partition=partition, iam_instance_profile_arn=iam_instance_profile_arn,
                               iam_instance_profile_name=iam_instance_profile_name)
        except NotFoundException:
            raise EC2ClientError(*profile_not_found(iam_instance_profile_name, iam_instance_profile_arn)) from None
        if profile is not None and not profile.roles:
            raise EC2ClientError(*profile_without_role(profile.arn))
        return profile

    for module in (utils, iam_instance_profile, instances):
        module.filter_iam_instance_profiles = filter_iam_instance_profiles
