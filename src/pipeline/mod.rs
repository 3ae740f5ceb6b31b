//! One pipeline for every run that reads or writes an account, in the caller's own account or in each account
//! of a fleet (`--accounts FILE --assume-role-name NAME`). The steps, in this order, each written once:
//!
//! 1. **input** ([`Run::open`]): the stack resolved and linted, the flags checked: bad input stops here with no
//!    AWS call. With `--accounts`, also the accounts file, the role name and the allowed accounts, and the fleet's
//!    caller identified once ([`fleet`]).
//! 2. **per account** ([`Run::each`], a pool of `--max-accounts` for a fleet): the caller (sts:GetCallerIdentity,
//!    or sts:AssumeRole into the account), the stack rendered for that account ([`Run::session`]), read
//!    ([`Run::open_observing`]), planned ([`plan`]: the managed policies, then the diff) and, when the plan
//!    writes, the pre-flight ([`preflight`]).
//! 3. **guards** ([`guards`]): a trust document that would lock its service out, a denied permission.
//! 4. **one confirmation** for every account ([`guards::confirm`]), and consent to change what wfboot did not
//!    create.
//! 5. **per account**: apply, read back until IAM shows what was written ([`apply`]), `--wait`'s probes ([`wait`]).
//! 6. **the result**: the verb's own report for one account; one row per account for a fleet ([`fleet`]).
//!
//! The verbs (`commands/`) say which steps they take and how their result reads; a step lives here, so a step a
//! verb takes is in its single-account and its fleet form at once.

pub(crate) mod apply;
pub(crate) mod fleet;
pub(crate) mod guards;
pub(crate) mod preflight;
pub(crate) mod report;
pub(crate) mod stackset;
pub(crate) mod wait;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use crate::account_list::Account;
use crate::aws::{errors, AwsSettings, Clients};
use crate::cli::{AccountsArgs, StackArgs};
use crate::engine;
use crate::error::{Error, Result};
use crate::output::Printer;
use crate::prompt;
use crate::resources::caller::{self, Caller, CallerKind};
use crate::resources::permissions::{self as perms, PermissionCheck};
use crate::resources::plan::Plan;
use crate::resources::{self, Observed};
use crate::stack::{harden, Desired, Stack, Target};
use crate::validate::{self, Options, Severity};

pub(crate) use crate::wording::plural;

/// How a command ended; mapped to the process exit code in one place (docs/commands.md "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    Success,
    /// `plan --detailed-exitcode` found changes, or `bootstrap` left changes held back.
    ChangesPending,
    /// `check` found something the bootstrap needs missing.
    CheckFailed,
    /// `lint` found errors (or warnings, with `--deny-warnings`).
    LintFailed,
    /// `verify` found a role that does not work for its service.
    VerifyFailed,
}

impl ExitStatus {
    pub(crate) fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::ChangesPending => 2,
            ExitStatus::CheckFailed => 3,
            ExitStatus::LintFailed => 4,
            ExitStatus::VerifyFailed => 5,
        }
    }
}

/// A run: the validated stack, the flags, and where it works (the caller's own account, or a fleet).
pub(crate) struct Run {
    pub(crate) stack: Stack,
    pub(crate) args: StackArgs,
    scope: Scope,
    pub(crate) started: Instant,
}

// One value per run: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Scope {
    /// The caller's own account, with the clients its credentials give.
    Own(Clients),
    Fleet(fleet::Fleet),
    /// `--org-unit`: a StackSet over OUs; its accounts are read as a fleet's are.
    OrgUnits(Box<stackset::OrgUnits>),
}

impl Scope {
    /// The caller's own clients (in a fleet, those that assume the roles).
    fn clients(&self) -> &Clients {
        match self {
            Scope::Own(clients) => clients,
            Scope::Fleet(f) => &f.clients,
            Scope::OrgUnits(o) => &o.fleet.clients,
        }
    }

    /// Where each account's session comes from, when not from the caller's own credentials.
    fn assumer(&self) -> Option<&fleet::Fleet> {
        match self {
            Scope::Own(_) => None,
            Scope::Fleet(f) => Some(f),
            Scope::OrgUnits(o) => Some(&o.fleet),
        }
    }
}

/// One account of a run: the caller's own (`account` is `None`), or one of a fleet's. Its printer never asks
/// in a fleet (one question is asked for all accounts, by the run).
#[derive(Clone, Copy)]
pub(crate) struct Unit<'a> {
    pub(crate) account: Option<&'a Account>,
    pub(crate) printer: &'a Printer,
}

impl Unit<'_> {
    /// "account 111122223333 (prod): " in a fleet, to begin the lines about this account; empty otherwise.
    pub(crate) fn prefix(&self) -> String {
        self.account.map(|a| format!("{}: ", fleet::who(a))).unwrap_or_default()
    }
}

/// What every account-facing step works with: clients, the caller and the stack rendered for its account.
pub(crate) struct Session {
    pub(crate) clients: Clients,
    pub(crate) caller: Caller,
    pub(crate) desired: Desired,
    pub(crate) user: Option<String>,
    /// What `--harden` did to the trust documents of `desired`; `None` without `--harden`.
    pub(crate) hardening: Option<Vec<harden::Note>>,
    /// Where the pre-flight reads the organisation's SCPs from: the caller's own clients, or in a fleet the
    /// fleet caller's (the management account or a delegated administrator), never the assumed role's: a member
    /// account cannot read its organisation.
    pub(crate) organisation: crate::organisation::Reader,
}

impl Run {
    /// Step 1: the stack and the flags (and, with `--accounts`, the accounts file), checked before any AWS call;
    /// then the clients (and, for a fleet, its caller).
    pub(crate) async fn open(
        printer: &Printer,
        aws: &AwsSettings,
        args: &StackArgs,
        accounts: Option<&AccountsArgs>,
    ) -> Result<Run> {
        Run::open_checked(printer, aws, args, accounts, |_| Ok(())).await
    }

    /// [`Run::open`], with the verb's own check of its flags against the stack (`check`), also before any AWS call.
    pub(crate) async fn open_checked(
        printer: &Printer,
        aws: &AwsSettings,
        args: &StackArgs,
        accounts: Option<&AccountsArgs>,
        check: impl FnOnce(&Stack) -> Result<()>,
    ) -> Result<Run> {
        let started = Instant::now();
        let mut args = args.clone();
        if accounts.is_some_and(|a| a.org.active()) {
            // A StackSet holds no user's policies (said by the scope, with the stack's list of them).
            args.skip_user = true;
        }
        let stack = validated_stack(printer, &args)?;
        check(&stack)?;
        let scope = match accounts {
            Some(a) if a.org.active() => {
                Scope::OrgUnits(Box::new(stackset::OrgUnits::open(printer, aws, &stack, &args, a).await?))
            }
            Some(a) if a.accounts.is_some() => Scope::Fleet(fleet::Fleet::open(printer, aws, &stack, &args, a).await?),
            _ => Scope::Own(Clients::connect(aws).await?),
        };
        args.user_name = args.user_name.filter(|_| !args.skip_user);
        Ok(Run { stack, args, scope, started })
    }

    pub(crate) fn fleet(&self) -> Option<&fleet::Fleet> {
        match &self.scope {
            Scope::Fleet(f) => Some(f),
            _ => None,
        }
    }

    /// `--org-unit`: the StackSet's scope.
    pub(crate) fn org_units(&self) -> Option<&stackset::OrgUnits> {
        match &self.scope {
            Scope::OrgUnits(o) => Some(o),
            _ => None,
        }
    }

    /// The run's accounts: the caller's own, the fleet's in file order, or the OUs' accounts that are read one by
    /// one (none with `--skip-account-reads`).
    pub(crate) fn units<'a>(&'a self, printer: &'a Printer, worker: &'a Printer) -> Vec<Unit<'a>> {
        match &self.scope {
            Scope::Own(_) => vec![Unit { account: None, printer }],
            Scope::Fleet(f) => f.accounts.iter().map(|a| Unit { account: Some(a), printer: worker }).collect(),
            Scope::OrgUnits(o) => o.readable.iter().map(|a| Unit { account: Some(a), printer: worker }).collect(),
        }
    }

    /// Runs `work` on `items`, at most `--max-accounts` at once in a fleet, each started as soon as a slot is free;
    /// the results in the items' order.
    pub(crate) async fn each<I, T, F, Fut>(&self, items: Vec<I>, work: F) -> Vec<T>
    where
        F: Fn(I) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let n = self.scope.assumer().map_or(1, |f| f.max_accounts);
        fleet::in_a_pool(items, n, work).await
    }

    /// Like [`Run::each`], but every item starts at once and takes one of the `--max-accounts` slots only for the
    /// part of its work that must be bounded (`work` is given the slots, [`fleet::Slots`]): `bootstrap --wait`'s
    /// probes, which mostly wait for the services, do not hold back the next account's apply, nor does an account
    /// waiting for IAM to show what it wrote.
    pub(crate) async fn each_in_slots<I, T, F, Fut>(&self, items: Vec<I>, work: F) -> Vec<T>
    where
        F: Fn(I, Arc<fleet::Slots>) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let slots = fleet::Slots::new(self.scope.assumer().map_or(1, |f| f.max_accounts));
        let n = items.len();
        fleet::in_a_pool(items, n, |item| work(item, slots.clone())).await
    }

    /// The account's session: its caller and the stack rendered for its account; nothing of the stack is read.
    pub(crate) async fn session(&self, unit: Unit<'_>) -> Result<Session> {
        let (clients, caller) = self.caller(unit).await?;
        let spinner = unit.printer.spinner("rendering the stack");
        let r = self.render(unit, &clients, &caller, &spinner).await;
        spinner.finish_and_clear();
        let Rendered { desired, user, hardening } = r?;
        let organisation = self.organisation(&clients);
        Ok(Session { clients, caller, desired, user, hardening, organisation })
    }

    /// The account's clients and caller: sts:GetCallerIdentity with the caller's own credentials, or sts:AssumeRole
    /// into a fleet's account. The wrong account stops here, before the account is read.
    async fn caller(&self, unit: Unit<'_>) -> Result<(Clients, Caller)> {
        let (clients, caller) = match (self.scope.assumer(), unit.account) {
            (Some(f), Some(account)) => f.assume(unit.printer, account, &self.stack).await?,
            _ => {
                let clients = self.scope.clients();
                (clients.clone(), caller::identify(clients).await?)
            }
        };
        self.stack.check_account(&self.args.expect_account, &caller.account_id)?;
        Ok((clients, caller))
    }

    /// Step 2 for one account: identify the caller, render the stack for its account and observe the stack.
    ///
    /// In the caller's own account, the resources found by name alone (roles, instance profiles, service-linked
    /// roles) are read from the start, alongside sts:GetCallerIdentity (which goes out first: the rest waits for
    /// its answer); the stack's policies (their ARNs hold the account id) and the operator user's attachments as
    /// soon as the caller is known, while the former are still being read. In a fleet's account the role is
    /// assumed first (its credentials read the account), then the same.
    ///
    /// `early`: when what was read by name already shows that the run will write (a role, instance profile or
    /// service-linked role to create or change), the checks a writing run needs before its first write start
    /// alongside the rest of the observation instead of after it ([`EarlyChecks`]). Never on a run that turns
    /// out to have nothing to do by name, so a no-op re-run makes no call for them.
    pub(crate) async fn open_observing(
        &self,
        unit: Unit<'_>,
        early: bool,
    ) -> Result<(Session, Observed, Option<EarlyChecks>)> {
        let printer = unit.printer;
        let spinner = printer.spinner("identifying the caller, reading the account");
        let names = resources::Names::of_stack(&self.stack);
        let assumed = match (self.scope.assumer(), unit.account) {
            (Some(f), Some(account)) => {
                let assumed = f.assume(printer, account, &self.stack).await;
                let assumed = assumed.inspect_err(|_| spinner.finish_and_clear())?;
                Some(assumed)
            }
            _ => None,
        };
        let clients = match &assumed {
            Some((clients, _)) => clients.clone(),
            None => self.scope.clients().clone(),
        };
        let organisation = self.organisation(&clients);
        if early {
            // A run that may write reads the organisation for its pre-flight: its first read joins the first wave.
            organisation.prefetch();
        }
        let (named_tx, named_rx) = tokio::sync::oneshot::channel();
        let named = async {
            let named = resources::observe_named(&clients, &names, false).await;
            if let Ok(n) = &named {
                let _ = named_tx.send(n.clone());
            }
            named
        };
        let rest = async {
            let caller = match assumed.as_ref().map(|(_, c)| c.clone()) {
                Some(caller) => caller,
                None => caller::identify(&clients).await?,
            };
            self.stack.check_account(&self.args.expect_account, &caller.account_id)?;
            let r = self.render(unit, &clients, &caller, &spinner).await?;
            let early = async {
                match early {
                    true => EarlyChecks::start(&clients, &caller, &r, named_rx.await.ok()?, &organisation),
                    false => None,
                }
            };
            // In one account, each policy's first version is read alongside the policy, not after its answer: a no-op
            // re-run (whose policies most often still have their first version) in two dependent round trips, not
            // three; a first run pays one NoSuchEntity read per policy for it, in a round trip it makes anyway. Not in a
            // fleet's accounts, where the run's length is the calls of all of them, not one account's round trips.
            let guess = unit.account.is_none();
            let account = resources::observe_account_part(&clients, &r.desired, r.user.as_deref(), guess);
            let (account, early) = tokio::join!(account, early);
            Ok::<_, Error>((caller, r, account, early))
        };
        let (rest, named) = tokio::join!(rest, named);
        spinner.finish_and_clear();
        // Who the caller is (or why that failed) comes first: it explains any error of the reads.
        let (caller, Rendered { desired, user, hardening }, account, early) = rest?;
        let observed = resources::Observed::assemble(&desired, named?, account?)?;
        Ok((Session { clients, caller, desired, user, hardening, organisation }, observed, early))
    }

    /// Where an account's organisation is read from: the fleet's one reader (its cache serves every account), or
    /// the caller's own clients.
    fn organisation(&self, clients: &Clients) -> crate::organisation::Reader {
        match self.scope.assumer() {
            Some(f) => f.organisation.clone(),
            None => crate::organisation::Reader::new(clients.clone()),
        }
    }

    /// Render the stack for the caller's account and settle the operator user (which may ask on a terminal, in
    /// the caller's own account only).
    async fn render(
        &self,
        unit: Unit<'_>,
        clients: &Clients,
        caller: &Caller,
        spinner: &indicatif::ProgressBar,
    ) -> Result<Rendered> {
        let printer = unit.printer;
        if unit.account.is_none() {
            spinner.suspend(|| {
                printer.info(&format!("Caller: {} (account {}, {})", caller.arn, caller.account_id, caller.partition));
                if caller.kind == CallerKind::Root {
                    printer.warn(
                        "you are using the account's root credentials; use an IAM user or role for day-to-day work",
                    );
                }
            });
        }
        let target = Target {
            partition: caller.partition.clone(),
            account_id: caller.account_id.clone(),
            region: clients.region.clone(),
        };
        // ARNs written for another partition than the caller's: known only now, still before any write.
        gate(printer, &self.stack, Some(&target), false, "nothing was written")?;
        let mut desired = self.stack.render(&target)?;
        let hardening = if self.args.harden { Some(harden::harden(&mut desired)?) } else { None };
        let user = match unit.account {
            // The same `--user-name` (or none) in every account of a fleet: an assumed role is not a user.
            Some(_) => {
                self.args.user_name.clone().filter(|_| !self.args.skip_user && !desired.user_policies.is_empty())
            }
            None => resolve_user(printer, &self.args, clients, caller, &desired, spinner).await?,
        };
        Ok(Rendered { desired, user, hardening })
    }
}

/// Step 2's plan: the diff of what was observed, once the stack's AWS-managed policies are known to exist (an
/// error otherwise; `already_checked` are not asked again). `alongside` runs with that check, on the plan, and is
/// dropped when the check fails.
pub(crate) async fn plan<T, F, Fut>(
    session: &Session,
    observed: &Observed,
    already_checked: &BTreeSet<String>,
    alongside: F,
) -> Result<(Plan, T)>
where
    F: FnOnce(Plan) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let plan = resources::diff(&session.desired, observed, session.user.as_deref());
    let managed = resources::managed_policy::check_managed_policies(
        &session.clients,
        &session.desired,
        observed,
        already_checked,
    );
    // A managed policy that does not exist, or a role over its quota, decides the run: `alongside` (the
    // pre-flight, whose simulation may still be going) is dropped then.
    let more = async { Ok::<_, Error>(alongside(plan.clone()).await) };
    let ((), more) = tokio::try_join!(managed, more)?;
    Ok((plan, more))
}

/// What a writing run checks before its first write — that the stack's AWS-managed policies exist, that the
/// caller may make the changes, and (read here, judged by the pre-flight) the organisation's SCPs — started before the observation is complete, for the plan the names alone
/// give ([`resources::NamedObservation::provisional`]): the stack's policies taken as absent, the operator user
/// as lacking all of its policies. That plan's changes include the real plan's, except a new version of a
/// policy that exists with another document; the pre-flight checks what the real plan needs beyond these.
///
/// The checks run as a task of their own, beside the rest of the observation and the plan, until
/// [`EarlyChecks::verdicts`] is awaited; dropping them (an outcome decided meanwhile: a missing operator user, a
/// quota, a refusal) aborts what is still in flight, so the run answers at once.
pub(crate) struct EarlyChecks {
    /// The AWS-managed policy ARNs whose existence is checked.
    pub(crate) managed_checked: BTreeSet<String>,
    task: tokio::task::JoinHandle<EarlyVerdicts>,
}

/// What the early checks came to.
struct EarlyVerdicts {
    /// That every AWS-managed policy of `managed_checked` exists.
    managed: Result<()>,
    /// The verdict on every permission the provisional plan needs, and how they were reached.
    permissions: Vec<PermissionCheck>,
    method: String,
}

impl Drop for EarlyChecks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EarlyChecks {
    fn start(
        clients: &Clients,
        caller: &Caller,
        r: &Rendered,
        named: resources::NamedObservation,
        organisation: &crate::organisation::Reader,
    ) -> Option<EarlyChecks> {
        let provisional = named.provisional(&r.desired, r.user.as_deref());
        let plan = resources::diff(&r.desired, &provisional, r.user.as_deref());
        if !plan.resources.iter().any(|p| p.kind.found_by_name() && !p.changes.is_empty()) {
            return None;
        }
        let attached = named.attached();
        let managed_checked: BTreeSet<String> =
            r.desired.managed_policy_arns().into_iter().filter(|a| !attached.contains(a)).collect();
        let unseen: Vec<String> = managed_checked.iter().cloned().collect();
        let needed = engine::permissions::required(&plan, &r.desired);
        let (clients, caller, organisation) = (clients.clone(), caller.clone(), organisation.clone());
        let task = tokio::spawn(async move {
            // The organisation's hierarchy and SCPs too (the reader keeps them for the pre-flight's verdict), so
            // that they are not one more round trip between the reads and the first write.
            let (managed, (permissions, method), _) = tokio::join!(
                crate::resources::managed_policy::check_exist(&clients, &unseen),
                perms::check(&clients, &caller, &needed),
                organisation.hierarchy(&caller.account_id)
            );
            EarlyVerdicts { managed, permissions, method }
        });
        Some(EarlyChecks { managed_checked, task })
    }

    /// The verdicts on the provisional plan's permissions, and how they were reached, once the checks are done;
    /// an error when an AWS-managed policy of the stack does not exist.
    pub(crate) async fn verdicts(mut self) -> Result<(Vec<PermissionCheck>, String)> {
        let done = (&mut self.task).await.map_err(|e| Error::aws(format!("the pre-flight's checks failed: {e}")))?;
        done.managed?;
        Ok((done.permissions, done.method))
    }
}

/// The stack rendered for the caller's account (hardened with `--harden`), and the operator user.
struct Rendered {
    desired: Desired,
    user: Option<String>,
    hardening: Option<Vec<harden::Note>>,
}

/// The stack `--stack` names, validated (its documents as IAM validates them: warnings are printed), and
/// `--user-name` checked: bad input fails before any AWS call.
fn validated_stack(printer: &Printer, args: &StackArgs) -> Result<Stack> {
    let stack = Stack::resolve(args.stack.as_deref())?.with_flags(args.permissions_boundary.as_deref(), &args.tags)?;
    gate(printer, &stack, None, true, "nothing was sent to AWS")?;
    if let Some(u) = &args.user_name {
        if !prompt::valid_user_name(u) {
            return Err(Error::usage(format!("--user-name `{u}` is not a valid IAM user name"))
                .with_help("IAM user names are 1-64 letters, digits and _+=,.@-"));
        }
    }
    Ok(stack)
}

/// The validation every verb that loads a stack runs on a loaded stack before anything else, with what
/// is known of the account (`target`: after the caller was identified, for ARNs in the wrong partition). Warnings
/// go to stderr (with `warnings`); any error is returned, listing every one. `done` says what has happened so far
/// ("nothing was sent to AWS", "nothing was written").
pub(crate) fn gate(
    printer: &Printer,
    stack: &Stack,
    target: Option<&Target>,
    warnings: bool,
    done: &str,
) -> Result<()> {
    let opts = Options {
        partition: target.map(|t| t.partition.clone()),
        account_id: target.map(|t| t.account_id.clone()),
        // The account's own quota is read from it instead (resources::managed_policy::check_managed_policies).
        role_policy_quota: None,
    };
    let findings = validate::lint(&stack.source, Some(stack), &[], &opts);
    if warnings {
        for f in findings.iter().filter(|f| f.severity == Severity::Warning && f.kept.is_none()) {
            // "warning: [rule] ...": the printer says "warning:" already.
            let text = f.to_string();
            printer.warn(text.strip_prefix("warning").unwrap_or(&text));
        }
    }
    let errors: Vec<String> =
        findings.iter().filter(|f| f.severity == Severity::Error).map(|f| format!("  - {f}")).collect();
    if errors.is_empty() {
        return Ok(());
    }
    let spec = if stack.source == "built-in" { stack.name.as_str() } else { stack.source.as_str() };
    Err(Error::input(format!(
        "{}: {} problem{} IAM would reject; {done}:\n{}",
        validate::stack_label(&stack.source, Some(&stack.name)),
        errors.len(),
        plural(errors.len()),
        errors.join("\n")
    ))
    .with_help(format!("fix the stack and run again; `wfboot lint --stack {spec}` lists every finding")))
}

async fn resolve_user(
    printer: &Printer,
    args: &StackArgs,
    clients: &Clients,
    caller: &Caller,
    desired: &Desired,
    spinner: &indicatif::ProgressBar,
) -> Result<Option<String>> {
    if args.skip_user || desired.user_policies.is_empty() {
        return Ok(None);
    }
    if let Some(u) = &args.user_name {
        return Ok(Some(u.clone()));
    }
    if printer.interactive && !printer.json() {
        // Ask until the answer names a user of this account (or is empty: no user).
        loop {
            // The spinner is hidden while the question is on the terminal.
            let Some(name) = spinner.suspend(|| prompt::user_name(printer, caller.user_name.as_deref()))? else {
                return Ok(None);
            };
            match clients.limit(clients.iam.get_user().user_name(&name).send()).await {
                Err(e) if errors::is_no_such_entity(&e) => {
                    let warning = format!("there is no IAM user `{name}` in account {}", caller.account_id);
                    spinner.suspend(|| printer.warn(&warning));
                }
                // Found, or not ours to know (no iam:GetUser): the plan will tell.
                _ => return Ok(Some(name)),
            }
        }
    }
    match &caller.user_name {
        Some(u) => Ok(Some(u.clone())),
        None => {
            spinner.suspend(|| {
                printer.warn(
                    "the caller is not an IAM user, so no operator user's policies are checked (pass --user-name NAME)",
                )
            });
            Ok(None)
        }
    }
}
