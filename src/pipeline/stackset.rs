//! The `--org-unit` scope: the unit of apply is a service-managed CloudFormation StackSet, not an account. The same
//! steps as every run, in the same order, each written once here (the verbs take them):
//!
//! 1. **input** ([`OrgUnits::open`]): the stack and the flags checked and the template rendered before any AWS call
//!    (OU ids by their pattern, the StackSet's name, the operation preferences); what a StackSet cannot hold (the
//!    operator user's policies) said. Then the caller, and the OUs' accounts (Organizations).
//! 2. **read** ([`read`]): the StackSet, its instances and trusted access; and each account of the OUs, through
//!    `--assume-role-name`, with the same per-account read as every run ([`super::Run::open_observing`]), unless
//!    `--skip-account-reads`.
//! 3. **plan** ([`plan`]): the StackSet against the rendered one, the accounts against the instances.
//! 4. **pre-flight** ([`preflight`]): trusted access, the SCPs over each account (the organisation reader and
//!    evaluator of every pre-flight), the caller's CloudFormation and Organizations calls simulated; an account
//!    with a resource CloudFormation does not own is held back (DeploymentTargets with AccountFilterType
//!    DIFFERENCE), one with a service-linked role gets CreateServiceLinkedRoles=false.
//! 5. **one question** ([`super::guards::confirm_once`]), **apply** and **follow** ([`apply`]), **read back**.
//! 6. **the result**: the `--accounts` table, one row per account ([`super::fleet`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::fleet::{self, Fleet, Row, RowStatus};
use super::{gate, plural, Run};
use crate::account_list::{self, Account};
use crate::aws::{AwsSettings, Clients};
use crate::cli::{AccountsArgs, StackArgs};
use crate::error::{Error, ErrorKind, Result};
use crate::organisation::Organisation;
use crate::output::Printer;
use crate::policy_eval::Verdict as Allowed;
use crate::resources::access::Permission;
use crate::resources::caller::{self, CallerKind};
use crate::resources::permissions::{self as perms, PermissionCheck};
use crate::resources::plan::Status;
use crate::resources::{self, Observed};
use crate::stack::{Stack, Target};
use crate::stackset::read::{self as set_read, Found};
pub(crate) use crate::stackset::write::Operation;
use crate::stackset::write::{self as set_write, Targets};
use crate::stackset::{self, AccountPlan, CallAs, Deployed, Instance, Mark, Plan, Preferences, Read, Verdict};

/// The role wfboot reads each account through when `--assume-role-name` is not given: the one AWS Organizations
/// creates in every account it creates ("Accessing a member account that has a management account access role":
/// https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_accounts_access.html).
pub(crate) const DEFAULT_ROLE: &str = "OrganizationAccountAccessRole";

/// The validated input of a `--org-unit` run, the caller, and the OUs' accounts.
pub(crate) struct OrgUnits {
    /// The caller's clients, the role each account is read through, the accounts (every member of the OUs, in
    /// order), the organisation reader.
    pub(crate) fleet: Fleet,
    pub(crate) call_as: CallAs,
    pub(crate) prefs: Preferences,
    pub(crate) timeout: Duration,
    pub(crate) skip_reads: bool,
    pub(crate) found: Found,
    /// The accounts read one by one: the members but the management account and suspended ones.
    pub(crate) readable: Vec<Account>,
    pub(crate) desired: stackset::Desired,
    /// What the StackSet does not hold, said once.
    pub(crate) notes: Vec<String>,
}

impl OrgUnits {
    /// Step 1: everything that can be checked offline, then the caller and the OUs' accounts.
    pub(crate) async fn open(
        printer: &Printer,
        aws: &AwsSettings,
        stack: &Stack,
        stack_args: &StackArgs,
        args: &AccountsArgs,
    ) -> Result<OrgUnits> {
        let started = Instant::now();
        let org = &args.org;
        let role_name = args.assume_role_name.clone().unwrap_or_else(|| DEFAULT_ROLE.to_string());
        if !account_list::valid_role_name(&role_name) {
            return Err(Error::usage(format!("--assume-role-name `{role_name}` is not a valid IAM role name"))
                .with_help("IAM role names are 1-64 letters, digits and _+=,.@- (the name only, without a path)"));
        }
        if let Some(id) = &args.external_id {
            if !account_list::valid_external_id(id) {
                return Err(Error::usage("--external-id is not a valid external id")
                    .with_help("an external id is 2-1224 letters, digits and _+=,.@:/-"));
            }
        }
        let mut seen = BTreeSet::new();
        if let Some(twice) = org.org_units.iter().find(|o| !seen.insert(o.as_str())) {
            return Err(Error::usage(format!("--org-unit {twice} is given twice")).with_help("give each OU once"));
        }
        if !stack.allowed_accounts.is_empty() {
            return Err(Error::usage(format!(
                "stack {} lists allowed_accounts, which a StackSet over OUs cannot keep to: auto-deployment deploys it \
                 to every account that joins the OUs later; nothing was sent to AWS",
                stack.name
            ))
            .with_help(
                "use --accounts with a file of the allowed accounts, or remove allowed_accounts from the stack",
            ));
        }
        let prefs = preferences(&args.org)?;
        let name = org.stack_set_name.clone().unwrap_or_else(|| stackset::default_name(&stack.name));
        let desired = desired(stack, stack_args, &name)?;
        let mut notes = Vec::new();
        if !stack.user_policies.is_empty() || !stack.user_customer_policies.is_empty() {
            let mut names: Vec<&str> = stack.user_policies.iter().map(|p| p.rsplit('/').next().unwrap_or(p)).collect();
            names.extend(stack.user_customer_policies.iter().map(String::as_str));
            notes.push(format!(
                "the operator user's policies ({}) are not in the StackSet: users are per person, so attach them to \
                 each operator's user or group (`wfboot bootstrap --user-name NAME` run in that account does it)",
                names.join(", ")
            ));
        }
        if stack_args.user_name.is_some() {
            printer.warn("--user-name is not used with --org-unit: the StackSet holds no user's policies");
        }

        let clients = Clients::connect(aws).await?;
        let spinner = printer.spinner("identifying the caller");
        let caller = caller::identify(&clients).await;
        spinner.finish_and_clear();
        let caller = caller?;
        if caller.kind == CallerKind::Root {
            printer.warn("you are using the account's root credentials; use an IAM user or role for day-to-day work");
        }
        let target = Target {
            partition: caller.partition.clone(),
            account_id: caller.account_id.clone(),
            region: clients.region.clone(),
        };
        gate(printer, stack, Some(&target), false, "nothing was written")?;
        let spinner = printer.spinner("reading the organisational units");
        let found = set_read::org_units(&clients, &org.org_units, &caller.account_id, call_as(org.call_as)).await;
        spinner.finish_and_clear();
        let found = found?;
        let refused: Vec<String> = found
            .members
            .iter()
            .filter(|m| m.id != found.management)
            .filter_map(|m| stack.account_refusal(&stack_args.expect_account, &m.id))
            .map(|why| format!("  - {why}"))
            .collect();
        if !refused.is_empty() {
            return Err(Error::usage(format!(
                "{} account{} of the OUs {} not allowed; nothing was written:\n{}",
                refused.len(),
                plural(refused.len()),
                if refused.len() == 1 { "is" } else { "are" },
                refused.join("\n")
            ))
            .with_help("target other OUs, or change --expect-account"));
        }
        let accounts: Vec<Account> =
            found.members.iter().map(|m| Account { id: m.id.clone(), name: m.name.clone() }).collect();
        let readable: Vec<Account> = match args.org.skip_account_reads {
            true => Vec::new(),
            false => found
                .members
                .iter()
                .filter(|m| m.id != found.management && !m.suspended)
                .map(|m| Account { id: m.id.clone(), name: m.name.clone() })
                .collect(),
        };
        let n = found.members.len();
        printer.info(&format!(
            "Caller: {} ({}); StackSet {name}; {} OU{} with {n} account{}{}",
            caller.arn,
            caller.partition,
            org.org_units.len(),
            plural(org.org_units.len()),
            plural(n),
            match args.org.skip_account_reads {
                true => ", not read one by one (--skip-account-reads)".to_string(),
                false => format!(", read through the role {role_name}"),
            }
        ));
        let fleet = Fleet::for_org_units(
            clients,
            caller,
            accounts,
            role_name,
            args.external_id.clone(),
            args.max_accounts as usize,
            aws.max_concurrency,
            started,
        );
        Ok(OrgUnits {
            fleet,
            call_as: call_as(org.call_as),
            prefs,
            timeout: Duration::from_secs(org.operation_timeout),
            skip_reads: org.skip_account_reads,
            found,
            readable,
            desired,
            notes,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.desired.name
    }

    fn clients(&self) -> &Clients {
        &self.fleet.clients
    }

    fn member(&self, id: &str) -> Option<&set_read::Member> {
        self.found.members.iter().find(|m| m.id == id)
    }
}

fn call_as(c: crate::cli::CallAs) -> CallAs {
    match c {
        crate::cli::CallAs::SelfAccount => CallAs::Management,
        crate::cli::CallAs::DelegatedAdmin => CallAs::DelegatedAdmin,
    }
}

/// The operation preferences, checked as CloudFormation checks them: a concurrency of at least one account, and
/// under STRICT_FAILURE_TOLERANCE at most one more account at once than the failures tolerated
/// (StackSetOperationPreferences:
/// https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_StackSetOperationPreferences.html).
fn preferences(args: &crate::cli::OrgArgs) -> Result<Preferences> {
    let amount = |a: crate::cli::Amount| match a {
        crate::cli::Amount::Count(n) => stackset::Amount::Count(n),
        crate::cli::Amount::Percentage(n) => stackset::Amount::Percentage(n),
    };
    let p = Preferences {
        failure_tolerance: amount(args.failure_tolerance),
        max_concurrent: amount(args.deploy_concurrency),
        soft: args.concurrency_mode == crate::cli::ConcurrencyMode::Soft,
    };
    if matches!(p.max_concurrent, stackset::Amount::Count(0) | stackset::Amount::Percentage(0)) {
        return Err(Error::usage("--deploy-concurrency must be at least 1 account (or 1%)"));
    }
    if let (false, stackset::Amount::Count(max), stackset::Amount::Count(tolerance)) =
        (p.soft, p.max_concurrent, p.failure_tolerance)
    {
        if max > tolerance + 1 {
            return Err(Error::usage(format!(
                "--concurrency-mode strict deploys to at most --failure-tolerance + 1 accounts at once ({}), not {max}",
                tolerance + 1
            ))
            .with_help("lower --deploy-concurrency, or use --concurrency-mode soft"));
        }
    }
    Ok(p)
}

/// The StackSet wfboot renders: `wfboot export`'s template, CreateServiceLinkedRoles=true where the stack has any,
/// the stack's tags (and its ownership tag) on the StackSet too.
fn desired(stack: &Stack, args: &StackArgs, name: &str) -> Result<stackset::Desired> {
    let template = crate::export::cloudformation(stack, args.harden)?;
    let body = template.to_string();
    // CloudFormation's limit on TemplateBody (CreateStackSet API reference).
    if body.len() > 51_200 {
        return Err(Error::input(format!(
            "the stack's template is {} bytes, over CloudFormation's 51,200 for a template body; nothing was sent to AWS",
            body.len()
        ))
        .with_help("split the stack, or deploy it with --accounts"));
    }
    let mut parameters = BTreeMap::new();
    if !stack.service_linked_roles.is_empty() {
        parameters.insert(crate::export::SLR_PARAMETER.to_string(), "true".to_string());
    }
    let mut tags: BTreeMap<String, String> = resources::tags::managed(&stack.tags).into_iter().collect();
    tags.insert(resources::OWNER_TAG.to_string(), stack.name.clone());
    Ok(stackset::Desired {
        name: name.to_string(),
        template,
        parameters,
        tags,
        description: format!("wfboot stack {} (wfboot --org-unit)", stack.name),
    })
}

/// The StackSet as read, with its instances, and whether trusted access is on.
pub(crate) struct State {
    pub(crate) deployed: Option<Deployed>,
    pub(crate) instances: Vec<Instance>,
    /// `Err`: could not be read (why).
    pub(crate) trusted: std::result::Result<bool, String>,
}

/// What one account holds that the StackSet meets, read through the role.
#[derive(Debug, Clone, Default)]
pub(crate) struct Holding {
    /// "role AWSBatchServiceRole (not made by CloudFormation or wfboot)": resources of the template that exist.
    pub(crate) existing: Vec<String>,
    /// Service-linked roles of the template that exist.
    pub(crate) service_linked: Vec<String>,
}

/// Step 2's StackSet part: the StackSet, its instances and trusted access.
pub(crate) async fn read_set(org: &OrgUnits, printer: &Printer) -> Result<State> {
    let spinner = printer.spinner(&format!("reading the StackSet {}", org.name()));
    let (set, trusted) = tokio::join!(
        set_read::stack_set(org.clients(), org.name(), org.call_as),
        set_read::trusted_access(org.clients(), org.call_as)
    );
    spinner.finish_and_clear();
    let (deployed, instances) = match set? {
        Some((d, i)) => (Some(d), i),
        None => (None, Vec::new()),
    };
    Ok(State { deployed, instances, trusted })
}

/// What was read of the OUs' accounts: which were read (and why not), what each read one holds, and the SCPs'
/// verdict on each account the run would write to.
#[derive(Default)]
pub(crate) struct Accounts {
    pub(crate) reads: BTreeMap<String, Read>,
    pub(crate) holdings: BTreeMap<String, Holding>,
    pub(crate) scps: BTreeMap<String, Organisation>,
}

/// Step 2: [`read_set`]; then, only for the accounts the run could write to (those without a deployed stack
/// instance, and every account when the StackSet itself changes), at the same time: each readable account's own
/// read (the run's per-account read, in a pool of `--max-accounts`; none with `--skip-account-reads`) and the SCPs'
/// verdict. An account whose instance is deployed and stays as it is costs no call. `everything` (`check`): every
/// account, deployed or not.
pub(crate) async fn read(run: &Run, org: &OrgUnits, printer: &Printer, everything: bool) -> Result<(State, Accounts)> {
    let state = read_set(org, printer).await?;
    let set_changes = stackset::plan_set(&org.desired, state.deployed.as_ref()).changes();
    let deployed: BTreeSet<&str> =
        state.instances.iter().filter(|i| i.deployed()).map(|i| i.account.as_str()).collect();
    let worth = |id: &str| everything || !deployed.contains(id);
    let worker = printer.for_worker();
    let units: Vec<_> =
        run.units(printer, &worker).into_iter().filter(|u| u.account.is_some_and(|a| worth(&a.id))).collect();
    let spinner = printer.spinner(&format!("reading {} account{}", units.len(), plural(units.len())));
    let accounts = run.each(units, |unit| async move {
        let id = unit.account.map(|a| a.id.clone()).unwrap_or_default();
        let r = run.open_observing(unit, false).await;
        (id, r.map(|(session, observed, _)| holding(&session.desired, &observed)))
    });
    let judged: Vec<&set_read::Member> = org
        .found
        .members
        .iter()
        .filter(|m| m.id != org.found.management && !m.suspended && (set_changes || worth(&m.id)))
        .collect();
    let (accounts, scps) = tokio::join!(accounts, scps(org, &run.stack, &judged));
    spinner.finish_and_clear();
    let mut out = Accounts { scps, ..Accounts::default() };
    for (id, r) in accounts {
        match r {
            Ok(h) => {
                out.reads.insert(id.clone(), Read::Done);
                out.holdings.insert(id, h);
            }
            Err(e) => {
                out.reads.insert(id, Read::Failed(e.message.lines().next().unwrap_or_default().to_string()));
            }
        }
    }
    Ok((state, out))
}

/// What an account holds of the stack, from the run's observation of it: each resource of the template that
/// exists (a stack instance created there would fail on it: "already exists"), and its service-linked roles that
/// exist (CreateServiceLinkedRoles=false for that account instead).
///
/// Only accounts without a deployed stack instance are read, so every resource found is one CloudFormation does not
/// own: an account whose instance is deployed holds the instance's own. Tags cannot tell them apart:
/// CloudFormation does not put its `aws:cloudformation:stack-name`/`stack-id`/`logical-id` tags on IAM roles
/// (aws-cloudformation/cloudformation-coverage-roadmap#277, #1159, #1966), and the template's roles carry
/// `wfboot:stack` as a `wfboot bootstrap` run's do.
fn holding(desired: &crate::stack::Desired, observed: &Observed) -> Holding {
    let plan = resources::diff(desired, observed, None);
    let mut h = Holding::default();
    for r in plan.resources.iter().filter(|r| r.verdict != Status::Create) {
        match r.ownership {
            resources::vocab::Ownership::External => h.service_linked.push(r.name.clone()),
            resources::vocab::Ownership::Stack => h.existing.push(format!(
                "{} {} (made by wfboot, tagged {}={})",
                r.kind,
                r.name,
                resources::OWNER_TAG,
                desired.stack
            )),
            _ => h.existing.push(format!("{} {} (not made by CloudFormation)", r.kind, r.name)),
        }
    }
    h
}

/// Step 4's organisation part: the SCPs' verdict on what the template creates, for `members` (never the management
/// account, which SCPs do not restrict and no StackSet deploys to). Read with the caller's organisation reader: the
/// hierarchy and the policies once for all accounts.
async fn scps(org: &OrgUnits, stack: &Stack, members: &[&set_read::Member]) -> BTreeMap<String, Organisation> {
    let reader = &org.fleet.organisation;
    let partition = org.fleet.caller.partition.clone();
    let region = org.clients().region.clone();
    let verdicts = futures::future::join_all(members.iter().map(|m| {
        let target = Target { partition: partition.clone(), account_id: m.id.clone(), region: region.clone() };
        async move {
            let needed = match stack.render(&target) {
                Ok(desired) => created_by_the_template(&desired),
                Err(e) => return (m.id.clone(), Organisation::Unverified { reason: e.message }),
            };
            (m.id.clone(), crate::organisation::verdict(reader, &m.id, &needed).await)
        }
    }))
    .await;
    verdicts.into_iter().collect()
}

/// The IAM requests a new stack instance makes in an account: those of a plan that creates every resource of the
/// stack but the operator user's (CloudFormation's execution role makes them, and SCPs apply to it).
fn created_by_the_template(desired: &crate::stack::Desired) -> Vec<Permission> {
    let fresh = Observed::absent(desired, None);
    let plan = resources::diff(desired, &fresh, None);
    crate::engine::permissions::required(&plan, desired)
}

/// Step 3: the plan. Pure, from what was read.
pub(crate) fn plan(org: &OrgUnits, state: &State, accounts: &Accounts) -> Plan {
    let Accounts { reads, holdings, scps } = accounts;
    let set = stackset::plan_set(&org.desired, state.deployed.as_ref());
    let changed_resources = set.items.iter().filter(|i| i.logical_id.is_some() && i.mark != Mark::Unchanged).count();
    let mut accounts = Vec::new();
    for m in &org.found.members {
        let instance = state.instances.iter().find(|i| i.account == m.id).cloned();
        let holding = holdings.get(&m.id);
        let read = match (reads.get(&m.id), org.skip_reads) {
            (Some(r), _) => r.clone(),
            (None, true) => Read::Skipped,
            (None, false) => Read::NotNeeded,
        };
        let refused = match scps.get(&m.id) {
            Some(o @ Organisation::Denied { .. }) => Some(o.row().2),
            _ => None,
        };
        let conflicts = holding.map(|h| h.existing.clone()).unwrap_or_default();
        let slrs = holding.map(|h| h.service_linked.clone()).unwrap_or_default();
        let (verdict, changes) = if m.id == org.found.management {
            let reason = "the organisation's management account, which a service-managed StackSet never deploys to: \
                          bootstrap it with `wfboot bootstrap` run there"
                .to_string();
            (Verdict::HeldBack { reason }, 0)
        } else if m.suspended {
            (Verdict::Skipped { reason: "suspended: CloudFormation skips it".into() }, 0)
        } else if let Some(reason) = refused {
            (Verdict::Refused { reason }, 0)
        } else {
            match &instance {
                Some(i) if i.deployed() => match set.action {
                    Mark::Update if changed_resources > 0 => (Verdict::Update, changed_resources),
                    Mark::Update => (Verdict::Update, 0),
                    _ => (Verdict::Current, 0),
                },
                _ if !conflicts.is_empty() => (
                    Verdict::HeldBack {
                        reason: format!(
                            "{} exist{} there and CloudFormation does not own {}: its stack instance would fail \
                             (\"already exists\"); delete or rename {} (or keep bootstrapping this account with \
                             --accounts), then run again",
                            conflicts.join(", "),
                            if conflicts.len() == 1 { "s" } else { "" },
                            if conflicts.len() == 1 { "it" } else { "them" },
                            if conflicts.len() == 1 { "it" } else { "them" },
                        ),
                    },
                    0,
                ),
                Some(_) => (Verdict::Redeploy, org.desired.resource_count(!slrs.is_empty())),
                None => (Verdict::Add, org.desired.resource_count(!slrs.is_empty())),
            }
        };
        let existing_service_linked_roles = match verdict {
            Verdict::Add | Verdict::Redeploy => slrs,
            _ => Vec::new(),
        };
        accounts.push(AccountPlan {
            account_id: m.id.clone(),
            name: m.name.clone(),
            org_unit: m.org_unit.clone(),
            verdict,
            instance,
            existing_service_linked_roles,
            read,
            changes,
        });
    }
    let targeted = |ou: &str| {
        state.deployed.as_ref().is_some_and(|d| d.org_units.iter().any(|o| o == ou))
            || state.instances.iter().any(|i| {
                i.organizational_unit_id.as_deref() == Some(ou)
                    || (i.organizational_unit_id.is_none() && org.member(&i.account).is_some_and(|m| m.org_unit == ou))
            })
    };
    let org_units =
        org.found
            .org_units
            .iter()
            .map(|(id, name)| {
                let mine: Vec<&AccountPlan> = accounts
                    .iter()
                    .filter(|a| {
                        &a.org_unit == id
                            && a.account_id != org.found.management
                            && !matches!(a.verdict, Verdict::Skipped { .. })
                    })
                    .collect();
                let refused = (!mine.is_empty() && mine.iter().all(|a| matches!(a.verdict, Verdict::Refused { .. })))
                    .then(|| match &mine[0].verdict {
                        Verdict::Refused { reason } => reason.clone(),
                        _ => String::new(),
                    });
                stackset::OrgUnit { id: id.clone(), name: name.clone(), targeted: targeted(id), refused }
            })
            .collect();
    let mut notes = org.notes.clone();
    if state.trusted == Ok(false) {
        notes.push(format!(
            "trusted access for StackSets is off in the organisation: bootstrap refuses until it is turned on, once, \
             from the management account: `{}`",
            stackset::ENABLE_TRUSTED_ACCESS
        ));
    }
    if org.skip_reads {
        notes.push(
            "--skip-account-reads: the accounts were not read, so a resource of the stack that exists there and that \
             CloudFormation does not own, or a service-linked role that exists, is found by CloudFormation instead \
             (that account's stack instance fails)"
                .into(),
        );
    }
    Plan { stack_set: set, region: org.clients().region.clone(), call_as: org.call_as, org_units, accounts, notes }
}

/// Step 4's rest: what must hold before the first CloudFormation write, and what the caller may do.
#[derive(Debug, Serialize)]
pub(crate) struct Preflight {
    /// Trusted access for StackSets: on, off, or why it could not be read.
    pub(crate) trusted_access: String,
    pub(crate) permissions: Vec<PermissionCheck>,
    pub(crate) permissions_method: String,
    /// Why nothing may be written, when something forbids it.
    #[serde(skip)]
    pub(crate) refusal: Option<Error>,
}

/// Trusted access, the StackSet being wfboot's and service-managed, and the caller's CloudFormation,
/// Organizations and STS calls simulated (as the IAM calls of every other pre-flight are).
pub(crate) async fn preflight(org: &OrgUnits, state: &State, plan: Option<&Plan>, stack: &str) -> Preflight {
    let destroy = plan.is_none();
    let needed = caller_permissions(org, plan);
    let (permissions, permissions_method) = perms::check(org.clients(), &org.fleet.caller, &needed).await;
    let trusted_access = match &state.trusted {
        Ok(true) => "on".to_string(),
        Ok(false) => "off".to_string(),
        Err(why) => format!("unverified ({why})"),
    };
    let mut refusal = None;
    if state.trusted == Ok(false) && !destroy {
        refusal = Some(
            Error::new(
                ErrorKind::CheckFailed,
                "trusted access for CloudFormation StackSets is off in the organisation: a service-managed StackSet \
                 cannot deploy; nothing was written",
            )
            .with_help(format!(
                "turn it on once, from the management account: `{}` (or the CloudFormation console's StackSets page), \
                 then run again",
                stackset::ENABLE_TRUSTED_ACCESS
            )),
        );
    }
    if let Some(d) = &state.deployed {
        if d.permission_model != "SERVICE_MANAGED" && !d.permission_model.is_empty() {
            refusal = Some(
                Error::usage(format!(
                "StackSet {} exists with {} permissions: --org-unit deploys with a service-managed one; nothing was \
                 written",
                org.name(),
                d.permission_model
            ))
                .with_help("give another name with --stack-set-name"),
            );
        } else if d.tags.get(resources::OWNER_TAG).map(String::as_str) != Some(stack) {
            refusal = Some(
                Error::usage(format!(
                "StackSet {} exists and was not made by wfboot for stack {stack} (it has no {}={stack} tag); nothing \
                 was written",
                org.name(),
                resources::OWNER_TAG
            ))
                .with_help("give another name with --stack-set-name"),
            );
        }
    }
    let denied: Vec<String> = permissions
        .iter()
        .filter(|c| matches!(c.verdict, Allowed::Denied { .. }))
        .map(|c| format!("  - {} on {}", c.action, c.resource))
        .collect();
    if refusal.is_none() && !denied.is_empty() {
        refusal = Some(
            Error::new(
                ErrorKind::CheckFailed,
                format!(
                    "{} may not make every call this run needs ({permissions_method}); nothing was written:\n{}",
                    org.fleet.caller.arn,
                    denied.join("\n")
                ),
            )
            .with_help("grant the missing permissions (docs/org-units.md lists them), then run again"),
        );
    }
    Preflight { trusted_access, permissions, permissions_method, refusal }
}

/// The caller's calls for this plan: the reads of every run, and the writes this one makes.
fn caller_permissions(org: &OrgUnits, plan: Option<&Plan>) -> Vec<Permission> {
    let c = &org.fleet.caller;
    // A service-managed StackSet lives in the management account, a delegated administrator's too ("Stack sets with
    // service-managed permissions are created in the management account, including stack sets that are created by
    // delegated administrators", CreateStackSet, CallAs:
    // https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStackSet.html).
    let stack_set = format!(
        "arn:{}:cloudformation:{}:{}:stackset/{}:*",
        c.partition,
        org.clients().region,
        org.found.management,
        org.name()
    );
    let mut out: Vec<Permission> = [
        "organizations:DescribeOrganization",
        "organizations:DescribeOrganizationalUnit",
        "organizations:ListAccountsForParent",
        "organizations:ListOrganizationalUnitsForParent",
    ]
    .iter()
    .map(|a| Permission::new(a, "*"))
    .collect();
    if org.call_as == CallAs::DelegatedAdmin {
        // wfboot's check of the registration, and CloudFormation's own on each call (stackset::read::registered).
        out.push(Permission::new("organizations:ListDelegatedAdministrators", "*"));
    }
    let mut calls = vec!["cloudformation:DescribeStackSet", "cloudformation:ListStackInstances"];
    let writes = plan.is_none_or(Plan::has_changes);
    if let Some(plan) = plan {
        if plan.stack_set.action == Mark::Create {
            calls.push("cloudformation:CreateStackSet");
        }
        if plan.stack_set.action == Mark::Update {
            calls.push("cloudformation:UpdateStackSet");
        }
        if plan.new_org_units().next().is_some() || plan.accounts.iter().any(|a| a.verdict == Verdict::Add) {
            calls.push("cloudformation:CreateStackInstances");
        }
        if plan.accounts.iter().any(|a| a.verdict == Verdict::Redeploy) {
            calls.push("cloudformation:UpdateStackInstances");
        }
    } else {
        calls.extend(["cloudformation:DeleteStackInstances", "cloudformation:DeleteStackSet"]);
    }
    if writes {
        calls.extend(["cloudformation:DescribeStackSetOperation", "cloudformation:ListStackSetOperationResults"]);
    }
    out.extend(calls.into_iter().map(|a| Permission::new(a, &stack_set)));
    if !org.skip_reads && !org.readable.is_empty() {
        let role = format!("arn:{}:iam::*:role/{}", c.partition, org.fleet.role_name());
        out.push(Permission::new("sts:AssumeRole", &role));
    }
    out
}

/// Step 5: the CloudFormation writes of `plan`, each operation followed to its end before the next (one at a time
/// per StackSet); then the instances read back. The operations this run ran, and the instances after them.
pub(crate) async fn apply(printer: &Printer, org: &OrgUnits, plan: &Plan) -> Result<(Vec<Operation>, Vec<Instance>)> {
    let c = org.clients();
    let name = org.name();
    let mut operations = Vec::new();
    let follow = |action: &'static str, id: String, targets: Option<Targets>, expected: usize| async move {
        set_write::follow(printer, c, name, org.call_as, action, &id, targets, expected, org.timeout).await
    };
    match plan.stack_set.action {
        Mark::Create => {
            printer.info(&format!("StackSet {name}: CreateStackSet (service-managed, auto-deployment on)"));
            set_write::create_stack_set(c, &org.desired, org.call_as, &set_write::operation_id()).await?;
        }
        Mark::Update => {
            let id =
                set_write::update_stack_set(printer, c, &org.desired, org.call_as, &org.prefs, org.timeout).await?;
            let n = plan.accounts.iter().filter(|a| a.verdict == Verdict::Update).count();
            operations.push(follow("UpdateStackSet", id, None, n).await?);
        }
        _ => {}
    }
    for (targets, overrides, expected) in create_targets(&org.found.management, plan) {
        let id =
            set_write::create_instances(printer, c, name, org.call_as, &targets, overrides, &org.prefs, org.timeout)
                .await?;
        operations.push(follow("CreateStackInstances", id, Some(targets), expected).await?);
    }
    for overrides in [false, true] {
        let again: Vec<&AccountPlan> = plan
            .accounts
            .iter()
            .filter(|a| a.verdict == Verdict::Redeploy && a.existing_service_linked_roles.is_empty() != overrides)
            .collect();
        for targets in intersections(&again) {
            let n = targets.accounts.len();
            let id = set_write::update_instances(
                printer,
                c,
                name,
                org.call_as,
                &targets,
                overrides,
                &org.prefs,
                org.timeout,
            )
            .await?;
            operations.push(follow("UpdateStackInstances", id, Some(targets), n).await?);
        }
    }
    let after = set_read::stack_set(c, name, org.call_as).await?.map(|(_, i)| i).unwrap_or_default();
    Ok((operations, after))
}

/// The CreateStackInstances calls of a plan, at most 50 OUs each: the new OUs (every account of them but those
/// held back, refused or given an override: AccountFilterType DIFFERENCE), the accounts to add in OUs already
/// targeted (INTERSECTION), and the accounts whose service-linked roles exist (INTERSECTION, with
/// CreateServiceLinkedRoles=false). Each with whether it overrides, and how many accounts it adds.
fn create_targets(management: &str, plan: &Plan) -> Vec<(Targets, bool, usize)> {
    let mut out = Vec::new();
    let new: Vec<&str> = plan.new_org_units().map(|o| o.id.as_str()).collect();
    for chunk in new.chunks(stackset::MAX_OUS_PER_CALL) {
        let in_chunk = |a: &&AccountPlan| chunk.contains(&a.org_unit.as_str());
        let excluded: Vec<String> = plan
            .accounts
            .iter()
            .filter(in_chunk)
            .filter(|a| a.account_id != management)
            .filter(|a| a.verdict != Verdict::Add || !a.existing_service_linked_roles.is_empty())
            .filter(|a| !matches!(a.verdict, Verdict::Skipped { .. }))
            .map(|a| a.account_id.clone())
            .collect();
        let adds = plan.accounts.iter().filter(in_chunk).filter(|a| a.verdict == Verdict::Add).count()
            - plan
                .accounts
                .iter()
                .filter(in_chunk)
                .filter(|a| a.verdict == Verdict::Add && !a.existing_service_linked_roles.is_empty())
                .count();
        let filter = (!excluded.is_empty()).then_some("DIFFERENCE");
        out.push((
            Targets { org_units: chunk.iter().map(|s| s.to_string()).collect(), accounts: excluded, filter },
            false,
            adds,
        ));
    }
    let new_ous: BTreeSet<&str> = new.iter().copied().collect();
    for overrides in [false, true] {
        let adds: Vec<&AccountPlan> = plan
            .accounts
            .iter()
            .filter(|a| a.verdict == Verdict::Add && a.existing_service_linked_roles.is_empty() != overrides)
            .filter(|a| overrides || !new_ous.contains(a.org_unit.as_str()))
            .filter(|a| !plan.org_units.iter().any(|o| o.id == a.org_unit && o.refused.is_some()))
            .collect();
        for t in intersections(&adds) {
            let n = t.accounts.len();
            out.push((t, overrides, n));
        }
    }
    out
}

/// `accounts` as INTERSECTION targets: their OUs (at most 50 per call) and exactly them.
fn intersections(accounts: &[&AccountPlan]) -> Vec<Targets> {
    let mut ous: Vec<&str> = accounts.iter().map(|a| a.org_unit.as_str()).collect();
    ous.sort();
    ous.dedup();
    ous.chunks(stackset::MAX_OUS_PER_CALL)
        .map(|chunk| Targets {
            org_units: chunk.iter().map(|s| s.to_string()).collect(),
            accounts: accounts
                .iter()
                .filter(|a| chunk.contains(&a.org_unit.as_str()))
                .map(|a| a.account_id.clone())
                .collect(),
            filter: Some("INTERSECTION"),
        })
        .collect()
}

/// The question of a `--org-unit` bootstrap: what the StackSet does, in a few words.
pub(crate) fn question(plan: &Plan) -> String {
    let mut parts = Vec::new();
    match plan.stack_set.action {
        Mark::Create => parts.push(format!("create StackSet {}", plan.stack_set.name)),
        Mark::Update => {
            let n = plan.accounts.iter().filter(|a| a.verdict == Verdict::Update).count();
            parts.push(format!("update StackSet {} ({n} account{} redeployed)", plan.stack_set.name, plural(n)))
        }
        _ => {}
    }
    let adds = plan.accounts.iter().filter(|a| a.verdict == Verdict::Add).count();
    let new = plan.new_org_units().count();
    if adds > 0 || new > 0 {
        parts.push(format!("deploy it to {adds} more account{} ({new} new OU{})", plural(adds), plural(new)));
    }
    let again = plan.accounts.iter().filter(|a| a.verdict == Verdict::Redeploy).count();
    if again > 0 {
        parts.push(format!("deploy it again to {again} failed account{}", plural(again)));
    }
    let mut q = parts.join(", ");
    if let Some(first) = q.get(..1) {
        q = format!("{}{}?", first.to_uppercase(), &q[1..]);
    }
    q
}

/// One row per account after a plan (`plan`, or `bootstrap` when the answer is no).
pub(crate) fn plan_rows(plan: &Plan) -> Vec<Row> {
    plan.accounts
        .iter()
        .map(|a| {
            let status = match &a.verdict {
                _ if a.changes_something() => RowStatus::ChangesPlanned,
                Verdict::HeldBack { .. } | Verdict::Refused { .. } => RowStatus::HeldBack,
                _ => RowStatus::NoChanges,
            };
            row(a, status, Some(a.changes))
        })
        .collect()
}

/// One row per account after the operations: each account's instance as read back, with the reason CloudFormation
/// gave for a failure.
pub(crate) fn applied_rows(printer: &Printer, plan: &Plan, operations: &[Operation], after: &[Instance]) -> Vec<Row> {
    plan.accounts
        .iter()
        .map(|a| {
            let result = operations.iter().rev().flat_map(|o| o.results.iter()).find(|r| r.account == a.account_id);
            let instance = after.iter().find(|i| i.account == a.account_id);
            if !a.changes_something() {
                let mut r = row(a, RowStatus::NoChanges, Some(0));
                match &a.verdict {
                    Verdict::HeldBack { .. } => r.status = RowStatus::HeldBack,
                    Verdict::Refused { reason } => r.fail(
                        format!("refused by the service control policies: {reason}; nothing was written for it"),
                        ErrorKind::CheckFailed,
                    ),
                    _ => {}
                }
                return r;
            }
            let failed = result.is_some_and(|r| matches!(r.status.as_str(), "FAILED" | "CANCELLED"))
                || instance.is_some_and(Instance::failed)
                || (instance.is_none() && a.verdict == Verdict::Add);
            if failed {
                let reason = result
                    .and_then(|r| r.status_reason.clone())
                    .or_else(|| instance.and_then(|i| i.status_reason.clone()))
                    .unwrap_or_else(|| match instance {
                        Some(i) => format!("stack instance {}", i.describe()),
                        None => "no stack instance after the operation".into(),
                    });
                let mut r = row(a, RowStatus::Failed, Some(0));
                let message = format!("stack instance failed: {reason}");
                printer.error(&format!("{}: {message}", a.who()));
                r.fail(message, ErrorKind::Aws);
                return r;
            }
            row(a, RowStatus::Applied, Some(a.changes))
        })
        .collect()
}

fn row(a: &AccountPlan, status: RowStatus, changes: Option<usize>) -> Row {
    let account = Account { id: a.account_id.clone(), name: a.name.clone() };
    let mut r = Row::new(&account, status);
    r.changes = changes;
    r.stack_instance = serde_json::to_value(a).ok();
    match &a.verdict {
        Verdict::HeldBack { reason } | Verdict::Skipped { reason } => r.note = Some(reason.clone()),
        Verdict::Refused { reason } => r.note = Some(format!("refused by the service control policies: {reason}")),
        _ => {}
    }
    if let (Read::Failed(why), None) = (&a.read, &r.note) {
        r.note = Some(format!("not read ({why})"));
    }
    r
}

/// What a `--org-unit` result carries beside its rows (JSON `stack_set`).
#[derive(Debug, Serialize)]
pub(crate) struct SetResult<'a> {
    pub(crate) name: &'a str,
    pub(crate) call_as: CallAs,
    pub(crate) region: &'a str,
    pub(crate) org_units: &'a [stackset::OrgUnit],
    pub(crate) plan: &'a stackset::SetPlan,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) preflight: Option<&'a Preflight>,
    pub(crate) operations: &'a [Operation],
    pub(crate) notes: &'a [String],
}

/// Say the plan's refusals and the accounts that could not be read, on stderr, once.
pub(crate) fn report(printer: &Printer, plan: &Plan) {
    let unread: Vec<String> = plan
        .accounts
        .iter()
        .filter_map(|a| match &a.read {
            Read::Failed(why) => Some(format!("  - {}: {why}", a.who())),
            _ => None,
        })
        .collect();
    if !unread.is_empty() {
        // The role Organizations creates in a new account trusts the management account only ("Accessing a member
        // account that has a management account access role", DEFAULT_ROLE's page).
        let hint = match plan.call_as {
            CallAs::DelegatedAdmin => format!(
                "\n(from a delegated administrator: {DEFAULT_ROLE}, the role Organizations creates, trusts the \
                 management account only; give --assume-role-name a role the caller may assume in each account, or \
                 --skip-account-reads)"
            ),
            CallAs::Management => String::new(),
        };
        printer.warn(&format!(
            "{} account{} could not be read, so what exists there was not checked (CloudFormation's own checks only):\n{}{hint}",
            unread.len(),
            plural(unread.len()),
            unread.join("\n")
        ));
    }
    for o in plan.org_units.iter().filter(|o| o.refused.is_some()) {
        printer.error(&format!(
            "{} ({}) is refused before any CloudFormation write: {}",
            o.id,
            o.name,
            o.refused.as_deref().unwrap_or_default()
        ));
    }
    if printer.json() {
        for n in &plan.notes {
            printer.info(&format!("Note: {n}"));
        }
    }
}

impl Preflight {
    /// The pre-flight's lines when it lets the run go on.
    pub(crate) fn report(&self, printer: &Printer) {
        let unverified = self.permissions.iter().filter(|p| matches!(p.verdict, Allowed::Unverified { .. })).count();
        if unverified > 0 {
            printer.warn(&format!(
                "{unverified} of {} permissions could not be verified ({}); continuing",
                self.permissions.len(),
                self.permissions_method
            ));
        } else {
            printer.info(&format!(
                "Pre-flight: the caller may make every call this run needs: {} permissions, {}",
                self.permissions.len(),
                self.permissions_method
            ));
        }
        if self.trusted_access.starts_with("unverified") {
            printer.warn(&format!("trusted access for StackSets: {}", self.trusted_access));
        }
    }
}

/// The accounts the instances of `plan` delete, and those held back because something uses their roles or
/// instance profiles (`destroy --org-unit`).
pub(crate) struct Teardown {
    pub(crate) accounts: Vec<(Account, TeardownVerdict)>,
    pub(crate) instances: Vec<Instance>,
}

/// An account's stack instance as a row carries it (`stack_instance` in JSON): verify's and destroy's rows.
#[derive(Serialize)]
pub(crate) struct InstanceOf<'a> {
    pub(crate) account_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) instance: Option<&'a Instance>,
}

pub(crate) enum TeardownVerdict {
    Delete { resources: usize },
    HeldBack { reason: String },
    NoInstance,
}

/// Step 2 of `destroy --org-unit`: per readable account with an instance, who uses the stack's roles and instance
/// profiles (`destroy`'s consumer look-ups); an account in use is held back unless `force`, and so is one that could
/// not be read (not deleted unchecked).
pub(crate) async fn teardown(run: &Run, org: &OrgUnits, printer: &Printer, state: &State, force: bool) -> Teardown {
    let worker = printer.for_worker();
    let with_instance: BTreeSet<&str> = state.instances.iter().map(|i| i.account.as_str()).collect();
    let units: Vec<_> = run
        .units(printer, &worker)
        .into_iter()
        .filter(|u| u.account.is_some_and(|a| with_instance.contains(a.id.as_str())))
        .collect();
    let looked_up = run
        .each(units, |unit| async move {
            let id = unit.account.map(|a| a.id.clone()).unwrap_or_default();
            let r = async {
                let (session, observed, _) = run.open_observing(unit, false).await?;
                let found = resources::consumers::observe(&session.clients, &session.caller.account_id).await;
                let plan = resources::diff(&session.desired, &observed, None);
                let mut used = Vec::new();
                for r in plan.resources.iter().filter(|r| r.verdict != Status::Create) {
                    for c in found.of_role(&r.name).into_iter().chain(found.of_instance_profile(&r.name)) {
                        let line = format!("{} {} used by {c}", r.kind, r.name);
                        if !used.contains(&line) {
                            used.push(line);
                        }
                    }
                }
                Ok::<_, Error>(used)
            };
            (id, r.await)
        })
        .await;
    let looked_up: BTreeMap<String, Result<Vec<String>>> = looked_up.into_iter().collect();
    let mut accounts = Vec::new();
    for m in &org.found.members {
        let account = Account { id: m.id.clone(), name: m.name.clone() };
        let verdict = if !with_instance.contains(m.id.as_str()) {
            TeardownVerdict::NoInstance
        } else {
            match (looked_up.get(&m.id), force) {
                (_, true) => TeardownVerdict::Delete { resources: org.desired.resource_count(false) },
                (Some(Ok(used)), _) if used.is_empty() => {
                    TeardownVerdict::Delete { resources: org.desired.resource_count(false) }
                }
                (Some(Ok(used)), _) => TeardownVerdict::HeldBack {
                    reason: format!("in use: {}; delete or change what uses them first, or --force", used.join("; ")),
                },
                (Some(Err(e)), _) => TeardownVerdict::HeldBack {
                    reason: format!(
                        "could not check who uses its roles ({}): held back, not deleted unchecked (or --force)",
                        e.message.lines().next().unwrap_or_default()
                    ),
                },
                (None, _) => TeardownVerdict::HeldBack {
                    reason:
                        "not read (--skip-account-reads): who uses its roles was not checked; held back (or --force)"
                            .into(),
                },
            }
        };
        accounts.push((account, verdict));
    }
    Teardown { accounts, instances: state.instances.clone() }
}

/// Step 5 of `destroy --org-unit`: DeleteStackInstances for the OUs' accounts but those held back (DIFFERENCE),
/// followed; then DeleteStackSet once no instance is left. The operation, the instances after it, and whether the
/// StackSet itself was deleted.
pub(crate) async fn delete(
    printer: &Printer,
    org: &OrgUnits,
    state: &State,
    teardown: &Teardown,
) -> Result<(Vec<Operation>, Vec<Instance>, bool)> {
    let c = org.clients();
    let name = org.name();
    let deleting: Vec<&Account> =
        teardown.accounts.iter().filter(|(_, v)| matches!(v, TeardownVerdict::Delete { .. })).map(|(a, _)| a).collect();
    let mut operations = Vec::new();
    if !deleting.is_empty() {
        let ous: Vec<String> = org
            .found
            .org_units
            .iter()
            .map(|(id, _)| id.clone())
            .filter(|ou| deleting.iter().any(|a| org.member(&a.id).is_some_and(|m| &m.org_unit == ou)))
            .collect();
        let held: Vec<String> = teardown
            .accounts
            .iter()
            .filter(|(a, v)| {
                matches!(v, TeardownVerdict::HeldBack { .. })
                    && org.member(&a.id).is_some_and(|m| ous.contains(&m.org_unit))
            })
            .map(|(a, _)| a.id.clone())
            .collect();
        for chunk in ous.chunks(stackset::MAX_OUS_PER_CALL) {
            let held_here: Vec<String> =
                held.iter().filter(|id| org.member(id).is_some_and(|m| chunk.contains(&m.org_unit))).cloned().collect();
            let filter = (!held_here.is_empty()).then_some("DIFFERENCE");
            let targets = Targets { org_units: chunk.to_vec(), accounts: held_here, filter };
            let n = deleting.iter().filter(|a| org.member(&a.id).is_some_and(|m| chunk.contains(&m.org_unit))).count();
            let id =
                set_write::delete_instances(printer, c, name, org.call_as, &targets, &org.prefs, org.timeout).await?;
            operations.push(
                set_write::follow(
                    printer,
                    c,
                    name,
                    org.call_as,
                    "DeleteStackInstances",
                    &id,
                    Some(targets),
                    n,
                    org.timeout,
                )
                .await?,
            );
        }
    }
    let after = match set_read::stack_set(c, name, org.call_as).await? {
        Some((_, instances)) => instances,
        None => return Ok((operations, Vec::new(), false)),
    };
    let mut deleted_set = false;
    if after.is_empty() && state.deployed.is_some() {
        printer.info(&format!("StackSet {name}: no stack instance left; DeleteStackSet"));
        set_write::delete_stack_set(c, name, org.call_as).await?;
        deleted_set = true;
    }
    Ok((operations, after, deleted_set))
}

impl Teardown {
    pub(crate) fn deletes(&self) -> usize {
        self.accounts.iter().filter(|(_, v)| matches!(v, TeardownVerdict::Delete { .. })).count()
    }

    /// The rows: planned (`dry_run` or no answer), or as read back after the operation.
    pub(crate) fn rows(&self, printer: &Printer, after: Option<&[Instance]>, operations: &[Operation]) -> Vec<Row> {
        self.accounts
            .iter()
            .map(|(a, v)| {
                let mut r = Row::new(a, RowStatus::NoChanges);
                r.changes = Some(0);
                let instance = self.instances.iter().find(|i| i.account == a.id);
                r.stack_instance = serde_json::to_value(InstanceOf { account_id: &a.id, instance }).ok();
                match v {
                    TeardownVerdict::NoInstance => {}
                    TeardownVerdict::HeldBack { reason } => {
                        r.status = RowStatus::HeldBack;
                        r.note = Some(reason.clone());
                    }
                    TeardownVerdict::Delete { resources } => match after {
                        None => {
                            r.status = RowStatus::ChangesPlanned;
                            r.changes = Some(*resources);
                        }
                        Some(after) => match after.iter().find(|i| i.account == a.id) {
                            None => {
                                r.status = RowStatus::Applied;
                                r.changes = Some(*resources);
                            }
                            Some(i) => {
                                let reason = operations
                                    .iter()
                                    .flat_map(|o| o.results.iter())
                                    .find(|x| x.account == a.id)
                                    .and_then(|x| x.status_reason.clone())
                                    .unwrap_or_else(|| format!("stack instance still there: {}", i.describe()));
                                let message = format!("stack instance not deleted: {reason}");
                                printer.error(&format!("{}: {message}", fleet::who(a)));
                                r.fail(message, ErrorKind::Aws);
                            }
                        },
                    },
                }
                r
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stackset::{OrgUnit, SetPlan};

    fn account(id: usize, ou: &str, verdict: Verdict, slr: bool) -> AccountPlan {
        AccountPlan {
            account_id: format!("{id:012}"),
            name: None,
            org_unit: ou.into(),
            verdict,
            instance: None,
            existing_service_linked_roles: if slr { vec!["batch.amazonaws.com".into()] } else { Vec::new() },
            read: Read::Done,
            changes: 11,
        }
    }

    fn plan(org_units: Vec<OrgUnit>, accounts: Vec<AccountPlan>) -> Plan {
        Plan {
            stack_set: SetPlan { name: "s".into(), action: Mark::Unchanged, items: Vec::new() },
            region: "us-east-1".into(),
            call_as: CallAs::Management,
            org_units,
            accounts,
            notes: Vec::new(),
        }
    }

    fn ou(n: usize, targeted: bool) -> OrgUnit {
        OrgUnit { id: format!("ou-ab12-{n:08}"), name: format!("OU {n}"), targeted, refused: None }
    }

    #[test]
    fn new_ous_go_fifty_to_a_call_each_with_its_own_held_back_accounts_excluded() {
        let ous: Vec<OrgUnit> = (0..120).map(|n| ou(n, false)).collect();
        let mut accounts: Vec<AccountPlan> = (0..120).map(|n| account(n, &ous[n].id, Verdict::Add, false)).collect();
        accounts.push(account(500, &ous[70].id, Verdict::HeldBack { reason: "x".into() }, false));
        accounts.push(account(501, &ous[3].id, Verdict::Add, true));
        accounts.push(account(502, &ous[0].id, Verdict::HeldBack { reason: "management".into() }, false));
        let calls = create_targets(&format!("{:012}", 502), &plan(ous, accounts));
        let sizes: Vec<usize> = calls.iter().map(|(t, _, _)| t.org_units.len()).collect();
        assert_eq!(sizes, [50, 50, 20, 1], "three calls for the new OUs, one for the override");
        assert_eq!(calls[0].0.filter, Some("DIFFERENCE"));
        assert_eq!(calls[0].0.accounts, [format!("{:012}", 501)], "the override account, not the management one");
        assert_eq!(
            (calls[1].0.filter, calls[1].0.accounts.clone()),
            (Some("DIFFERENCE"), vec![format!("{:012}", 500)])
        );
        assert_eq!((calls[2].0.filter, calls[2].2), (None, 20), "nothing excluded: every account of the OUs");
        let (last, overrides, n) = &calls[3];
        assert_eq!(
            (last.filter, last.accounts.clone(), *overrides, *n),
            (Some("INTERSECTION"), vec![format!("{:012}", 501)], true, 1)
        );
    }

    #[test]
    fn accounts_to_add_in_ous_already_targeted_are_named_one_by_one() {
        let ous = vec![ou(1, true), ou(2, true)];
        let accounts = vec![
            account(1, &ous[0].id, Verdict::Add, false),
            account(2, &ous[0].id, Verdict::Current, false),
            account(3, &ous[1].id, Verdict::Add, false),
        ];
        let calls = create_targets("999999999999", &plan(ous.clone(), accounts));
        assert_eq!(calls.len(), 1);
        let (t, overrides, n) = &calls[0];
        assert_eq!((t.filter, *overrides, *n), (Some("INTERSECTION"), false, 2));
        assert_eq!(t.org_units, [ous[0].id.clone(), ous[1].id.clone()]);
        assert_eq!(t.accounts, [format!("{:012}", 1), format!("{:012}", 3)]);
    }
}
