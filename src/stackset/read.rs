//! What `--org-unit` reads before it plans, all read-only: the accounts under each target OU (Organizations), the
//! StackSet and its stack instances, and whether trusted access is on (CloudFormation).
//!
//! Calls: organizations DescribeOrganizationalUnit (an OU's name), ListOrganizationalUnitsForParent and
//! ListAccountsForParent (the OUs below, every level, and their accounts), DescribeOrganization (the management
//! account, never a target), ListAWSServiceAccessForOrganization (trusted access, when CloudFormation's own
//! DescribeOrganizationsAccess is not answered); cloudformation DescribeStackSet, ListStackInstances,
//! DescribeOrganizationsAccess; with `--call-as delegated-admin`, organizations ListDelegatedAdministrators (the caller
//! registered for StackSets). From the management account, or a member account that is a delegated administrator
//! (AWS Organizations API reference, ListAccountsForParent: "This operation can be called only from the
//! organization's management account or by a member account that is a delegated administrator").

use std::collections::BTreeMap;

use aws_sdk_organizations::types::AccountStatus;

use super::{CallAs, Deployed, Instance, TRUSTED_ACCESS_PRINCIPAL};
use crate::aws::{errors, Clients};
use crate::error::{Error, ErrorKind, Result};

/// One account under a target OU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    /// The target OU (an --org-unit) it was found under.
    pub(crate) org_unit: String,
    pub(crate) suspended: bool,
}

/// The target OUs as Organizations has them.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// Per --org-unit, in the order given: its id and what it is called ("OU /workloads", "the root").
    pub(crate) org_units: Vec<(String, String)>,
    /// Every account under them, each once (under the first target OU that holds it), in a stable order.
    pub(crate) members: Vec<Member>,
    /// The organisation's management account.
    pub(crate) management: String,
}

/// The OUs' accounts, every level down. An OU that does not exist stops the run here (before any write), and so does
/// a caller that is not where `call_as` says (before what the OU reads answered it: AccessDenied, for a member).
pub(crate) async fn org_units(clients: &Clients, ids: &[String], caller: &str, call_as: CallAs) -> Result<Found> {
    let c = clients;
    let management = async {
        let out = c
            .limit(c.organizations.describe_organization().send())
            .await
            .map_err(|e| refused("read the organisation (organizations:DescribeOrganization)", &e))?;
        out.organization()
            .and_then(|o| o.master_account_id())
            .map(str::to_string)
            .ok_or_else(|| Error::aws("organizations:DescribeOrganization answered without the management account"))
    };
    let each = futures::future::try_join_all(ids.iter().map(|id| one_org_unit(c, id)));
    let registered = async {
        match call_as {
            CallAs::DelegatedAdmin => Some(registered(c, caller).await),
            CallAs::Management => None,
        }
    };
    let (management, registered, each) = tokio::join!(management, registered, each);
    let management = management?;
    if let Some(e) = not_admin(call_as, caller, &management) {
        return Err(e);
    }
    // Before what the OU reads answered: an unregistered member's reads are refused (AccessDeniedException).
    if let Some(Err(e)) = registered {
        return Err(e);
    }
    let each = each?;
    let mut members: Vec<Member> = Vec::new();
    let mut org_units = Vec::new();
    for (id, found) in ids.iter().zip(each) {
        org_units.push((id.clone(), name_of(id, found.0)));
        for m in found.1 {
            if !members.iter().any(|x| x.id == m.id) {
                members.push(m);
            }
        }
    }
    Ok(Found { org_units, members, management })
}

fn name_of(id: &str, name: Option<String>) -> String {
    match name {
        _ if id.starts_with("r-") => "the root".into(),
        Some(n) => format!("OU {n}"),
        None => format!("OU {id}"),
    }
}

/// An OU's name and every account below it, level by level (each level's OUs read at once).
async fn one_org_unit(c: &Clients, id: &str) -> Result<(Option<String>, Vec<Member>)> {
    fn not_found<E: aws_smithy_types::error::metadata::ProvideErrorMetadata, R>(
        e: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> bool {
        matches!(
            errors::code(e),
            Some("ParentNotFoundException" | "OrganizationalUnitNotFoundException" | "TargetNotFoundException")
        )
    }
    let name = async {
        if id.starts_with("r-") {
            return Ok(None);
        }
        match c.limit(c.organizations.describe_organizational_unit().organizational_unit_id(id).send()).await {
            Ok(out) => Ok(out.organizational_unit().and_then(|o| o.name()).map(str::to_string)),
            Err(e) if not_found(&e) => Err(missing(id, &e)),
            Err(e) => Err(refused(&format!("read the organisational unit {id}"), &e)),
        }
    };
    let below = async {
        let mut members = Vec::new();
        let mut level = vec![id.to_string()];
        // Organizations allows five levels of OUs under the root ("Quotas for AWS Organizations").
        for _ in 0..6 {
            if level.is_empty() {
                break;
            }
            let read = futures::future::try_join_all(level.iter().map(|parent| async move {
                let accounts =
                    c.all(c.organizations.list_accounts_for_parent().parent_id(parent).into_paginator().send());
                let ous = c.all(
                    c.organizations.list_organizational_units_for_parent().parent_id(parent).into_paginator().send(),
                );
                let (accounts, ous) = tokio::join!(accounts, ous);
                let what = format!(
                    "list what is in {parent} (organizations:ListAccountsForParent, ListOrganizationalUnitsForParent)"
                );
                let accounts = accounts.map_err(|e| match not_found(&e) {
                    true => missing(parent, &e),
                    false => refused(&what, &e),
                })?;
                let ous = ous.map_err(|e| refused(&what, &e))?;
                let accounts: Vec<Member> = accounts
                    .iter()
                    .flat_map(|p| p.accounts())
                    .filter_map(|a| {
                        Some(Member {
                            id: a.id()?.to_string(),
                            name: a.name().map(str::to_string),
                            org_unit: id.to_string(),
                            suspended: a.status() == Some(&AccountStatus::Suspended),
                        })
                    })
                    .collect();
                let ous: Vec<String> = ous
                    .iter()
                    .flat_map(|p| p.organizational_units())
                    .filter_map(|o| o.id().map(str::to_string))
                    .collect();
                Ok::<_, Error>((accounts, ous))
            }))
            .await?;
            level = Vec::new();
            for (accounts, ous) in read {
                members.extend(accounts);
                level.extend(ous);
            }
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(members)
    };
    tokio::try_join!(name, below)
}

/// An Organizations read refused: what it needs, besides the error.
fn refused<E>(
    what: &str,
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let err = errors::describe(what, e);
    if !errors::is_access_denied(e) {
        return err;
    }
    err.with_help(format!(
        "Organizations answers these reads to the management account and to delegated administrators only: run from \
         the management account, or from an account registered with `aws organizations \
         register-delegated-administrator --service-principal {TRUSTED_ACCESS_PRINCIPAL} --account-id ID` with \
         --call-as delegated-admin"
    ))
}

fn missing<E, R>(id: &str, e: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    Error::usage(format!(
        "--org-unit {id} is not in the organisation ({}); nothing was written",
        errors::code(e).unwrap_or("not found")
    ))
    .with_help("`aws organizations list-roots` and `aws organizations list-organizational-units-for-parent --parent-id ID` list the ids")
}

/// Whether trusted access for StackSets is on: CloudFormation's DescribeOrganizationsAccess, or, where that is
/// not answered, Organizations' list of the services with access. `None` when neither could be read (said, not
/// refused on).
pub(crate) async fn trusted_access(clients: &Clients, call_as: CallAs) -> Result<bool, String> {
    let c = clients;
    // Asked once, without the SDK's retries: a failure of any kind falls back on Organizations' own list.
    let once = aws_sdk_cloudformation::config::Builder::default()
        .retry_config(aws_smithy_types::retry::RetryConfig::disabled());
    let cfn = c.limit(
        c.cloudformation
            .describe_organizations_access()
            .call_as(call_as.sdk())
            .customize()
            .config_override(once)
            .send(),
    );
    let cfn = cfn.await;
    match cfn {
        Ok(out) => return Ok(out.status().is_some_and(|s| s.as_str() == "ENABLED")),
        // Not implemented by an emulator, or refused: Organizations' own list next.
        Err(e) => tracing::debug!("cloudformation:DescribeOrganizationsAccess: {}", errors::short(&e)),
    }
    let pages = c
        .all(c.organizations.list_aws_service_access_for_organization().into_paginator().send())
        .await
        .map_err(|e| errors::short(&e))?;
    Ok(pages
        .iter()
        .flat_map(|p| p.enabled_service_principals())
        .any(|s| s.service_principal() == Some(TRUSTED_ACCESS_PRINCIPAL)))
}

/// The StackSet (None when there is none by that name) and its stack instances in `region`.
pub(crate) async fn stack_set(
    clients: &Clients,
    name: &str,
    call_as: CallAs,
) -> Result<Option<(Deployed, Vec<Instance>)>> {
    let c = clients;
    let described = c.limit(c.cloudformation.describe_stack_set().stack_set_name(name).call_as(call_as.sdk()).send());
    let instances = c.all(
        c.cloudformation.list_stack_instances().stack_set_name(name).call_as(call_as.sdk()).into_paginator().send(),
    );
    let (described, instances) = tokio::join!(described, instances);
    let described = match described {
        Ok(out) => out,
        Err(e) if errors::code(&e) == Some("StackSetNotFoundException") => return Ok(None),
        Err(e) => {
            return Err(errors::describe(&format!("read the StackSet {name} (cloudformation:DescribeStackSet)"), &e))
        }
    };
    let Some(s) = described.stack_set() else {
        return Err(Error::aws(format!("cloudformation:DescribeStackSet answered without the StackSet {name}")));
    };
    let pairs = |items: Vec<(Option<&str>, Option<&str>)>| -> BTreeMap<String, String> {
        items.into_iter().filter_map(|(k, v)| Some((k?.to_string(), v.unwrap_or_default().to_string()))).collect()
    };
    let deployed = Deployed {
        id: s.stack_set_id().unwrap_or_default().to_string(),
        status: s.status().map(|x| x.as_str().to_string()).unwrap_or_default(),
        permission_model: s.permission_model().map(|x| x.as_str().to_string()).unwrap_or_default(),
        template: s.template_body().and_then(|t| serde_json::from_str(t).ok()),
        parameters: pairs(s.parameters().iter().map(|p| (p.parameter_key(), p.parameter_value())).collect()),
        tags: pairs(s.tags().iter().map(|t| (t.key(), t.value())).collect()),
        auto_deployment: s
            .auto_deployment()
            .map(|a| (a.enabled().unwrap_or(false), a.retain_stacks_on_account_removal().unwrap_or(false))),
        managed_execution: s.managed_execution().and_then(|m| m.active()),
        capabilities: s.capabilities().iter().map(|c| c.as_str().to_string()).collect(),
        org_units: s.organizational_unit_ids().to_vec(),
    };
    let instances = instances.map_err(|e| {
        errors::describe(&format!("list the stack instances of {name} (cloudformation:ListStackInstances)"), &e)
    })?;
    let region = c.region.as_str();
    let instances = instances
        .iter()
        .flat_map(|p| p.summaries())
        .filter(|i| i.region().is_none_or(|r| r == region))
        .filter_map(|i| {
            Some(Instance {
                account: i.account()?.to_string(),
                status: i.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                detailed_status: i
                    .stack_instance_status()
                    .and_then(|s| s.detailed_status())
                    .map(|d| d.as_str().to_string()),
                status_reason: i.status_reason().filter(|r| !r.is_empty()).map(str::to_string),
                organizational_unit_id: i.organizational_unit_id().map(str::to_string),
            })
        })
        .collect();
    Ok(Some((deployed, instances)))
}

/// The one command, run in the management account, that makes `account` a delegated administrator for StackSets.
pub(crate) fn register_command(account: &str) -> String {
    format!(
        "aws organizations register-delegated-administrator --service-principal {TRUSTED_ACCESS_PRINCIPAL} \
         --account-id {account}"
    )
}

/// `--call-as delegated-admin`: whether the caller's account is registered as a delegated administrator for
/// StackSets, read with organizations ListDelegatedAdministrators for the StackSets principal. That call, not
/// ListDelegatedServicesForAccount, because CloudFormation makes it with the caller's credentials on every
/// CallAs=DELEGATED_ADMIN call (without organizations:ListDelegatedAdministrators the caller gets "Account used is not
/// a delegated administrator": hashicorp/terraform-provider-aws#37069), so the caller needs it anyway; and a
/// delegated administrator may make it ("This operation can be called only from the organization's management
/// account or by a member account that is a delegated administrator",
/// https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListDelegatedAdministrators.html). A member
/// that is a delegated administrator for no service is answered AccessDeniedException, as is a caller without the
/// permission: both are said. Registration is what CloudFormation requires ("Register a delegated administrator",
/// https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/stacksets-orgs-delegated-admin.html).
async fn registered(c: &Clients, account: &str) -> Result<()> {
    let pages = c
        .all(
            c.organizations
                .list_delegated_administrators()
                .service_principal(TRUSTED_ACCESS_PRINCIPAL)
                .into_paginator()
                .send(),
        )
        .await;
    let not_registered = |why: String| {
        Error::new(
            ErrorKind::CheckFailed,
            format!(
                "--call-as delegated-admin: the caller's account {account} is not registered as a delegated \
                 administrator for CloudFormation StackSets ({why}); nothing was written"
            ),
        )
        .with_help(format!(
            "in the management account, run once: `{}`; then run again (or run from the management account with \
             --call-as self)",
            register_command(account)
        ))
    };
    match pages {
        Ok(pages) => {
            let listed = pages.iter().flat_map(|p| p.delegated_administrators()).any(|a| a.id() == Some(account));
            match listed {
                true => Ok(()),
                false => Err(not_registered(format!(
                    "organizations:ListDelegatedAdministrators does not list it for {TRUSTED_ACCESS_PRINCIPAL}"
                ))),
            }
        }
        // Organizations' answer to a member that is a delegated administrator for no service, and IAM's to a caller
        // without organizations:ListDelegatedAdministrators: the code does not tell them apart.
        Err(e) if errors::is_access_denied(&e) => Err(not_registered(format!(
            "organizations:ListDelegatedAdministrators answered {}: the account is a delegated administrator for no \
             service, or the caller may not call it, which CloudFormation needs too",
            errors::short(&e)
        ))),
        Err(e) => Err(errors::describe(
            "read the delegated administrators for StackSets (organizations:ListDelegatedAdministrators)",
            &e,
        )),
    }
}

/// The caller is not where `--call-as` says: CloudFormation's own answer, turned into the next step.
pub(crate) fn not_admin(call_as: CallAs, account: &str, management: &str) -> Option<Error> {
    match call_as {
        // CloudFormation answers CallAs=DELEGATED_ADMIN from the management account with ValidationError "Account
        // used is not a delegated administrator" (quoted in cdklabs/cdk-stacksets#265 and
        // aws-solutions/quota-monitor-for-aws#102): the management account cannot be registered as one
        // (RegisterDelegatedAdministrator, ConstraintViolationException "You cannot register master account/yourself
        // as delegated administrator for your organization", quoted in the latter).
        CallAs::DelegatedAdmin if account == management => Some(
            Error::new(
                ErrorKind::Usage,
                format!(
                    "the caller's account {account} is the organisation's management account, which is never a \
                     delegated administrator (CloudFormation refuses CallAs=DELEGATED_ADMIN from it: \"Account used \
                     is not a delegated administrator\"); nothing was written"
                ),
            )
            .with_help("run the same command with --call-as self (the default)"),
        ),
        CallAs::Management if account != management => Some(
            Error::new(
                ErrorKind::Usage,
                format!(
                    "the caller's account {account} is not the organisation's management account ({management}); \
                     nothing was written"
                ),
            )
            .with_help(
                "run from the management account, or from a delegated administrator for StackSets with \
                 --call-as delegated-admin",
            ),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_caller_in_the_wrong_place_for_its_call_as_is_told_the_other_one_and_the_register_command_is_one_line() {
        let (management, member) = ("111111111111", "222222222222");
        let e = not_admin(CallAs::DelegatedAdmin, management, management).unwrap();
        assert_eq!(e.kind.exit_code(), 64);
        assert!(e.message.contains("is the organisation's management account"), "{}", e.message);
        assert!(e.help.unwrap().contains("--call-as self"));
        let e = not_admin(CallAs::Management, member, management).unwrap();
        assert!(e.help.unwrap().contains("--call-as delegated-admin"));
        assert!(not_admin(CallAs::DelegatedAdmin, member, management).is_none(), "its registration is read instead");
        assert!(not_admin(CallAs::Management, management, management).is_none());
        assert_eq!(
            register_command(member),
            "aws organizations register-delegated-administrator --service-principal \
             member.org.stacksets.cloudformation.amazonaws.com --account-id 222222222222"
        );
    }
}
