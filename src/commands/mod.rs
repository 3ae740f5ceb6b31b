//! Commands: each is a verb that drives the engine and prints through the printer.

pub(crate) mod accounts;
#[cfg(feature = "ec2")]
pub(crate) mod attach;
pub(crate) mod bootstrap;
pub(crate) mod check;
pub(crate) mod destroy;
pub(crate) mod docs;
pub(crate) mod export;
pub(crate) mod lint;
pub(crate) mod plan;
pub(crate) mod report;
pub(crate) mod stacks;
pub(crate) mod verify;
pub(crate) mod whoami;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::aws::{errors, AwsSettings, Clients};
use crate::cli::StackArgs;
use crate::engine;
use crate::engine::apply::{ApplyObserver, Outcome};
use crate::error::{Error, Result};
use crate::output::Printer;
use crate::prompt;
use crate::resources::caller::{self, Caller, CallerKind};
use crate::resources::permissions::{self as perms, PermissionCheck};
use crate::resources::plan::PlannedChange;
use crate::resources::{self, Observed};
use crate::stack::{harden, Desired, Stack, Target};

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

/// What every account-facing command starts from: a validated stack, clients, the caller and the rendering.
pub(crate) struct Session {
    pub(crate) clients: Clients,
    pub(crate) caller: Caller,
    pub(crate) desired: Desired,
    pub(crate) user: Option<String>,
    /// What `--harden` did to the trust documents of `desired`; `None` without `--harden`.
    pub(crate) hardening: Option<Vec<harden::Note>>,
    /// Where the pre-flight reads the organisation's SCPs from: this session's clients, or a fleet caller's.
    pub(crate) organisation: crate::organisation::Reader,
}

impl Session {
    /// Validate the stack and the flags (bad input fails before any AWS call), identify the caller, render
    /// the stack for its account, and observe the stack.
    ///
    /// The resources found by name alone (roles, instance profiles, service-linked roles) are read from the
    /// start, alongside sts:GetCallerIdentity (which goes out first: the rest waits for its answer); the
    /// stack's policies (their ARNs hold the account id) and the operator user's attachments as soon as the
    /// caller is known, while the former are still being read.
    ///
    /// `early`: when what was read by name already shows that the run will write (a role, instance profile or
    /// service-linked role to create or change), the checks a writing run needs before its first write start
    /// alongside the rest of the observation instead of after it ([`EarlyChecks`]). Never on a run that turns
    /// out to have nothing to do by name, so a no-op re-run makes no call for them.
    pub(crate) async fn open_observing(
        printer: &Printer,
        aws: &AwsSettings,
        args: &StackArgs,
        early: bool,
    ) -> Result<(Session, Observed, Option<EarlyChecks>)> {
        let (stack, clients) = prepare(printer, aws, args).await?;
        let spinner = printer.spinner("identifying the caller, reading the account");
        let names = resources::Names::of_stack(&stack);
        let (named_tx, named_rx) = tokio::sync::oneshot::channel();
        let named = async {
            let named = resources::observe_named(&clients, &names, false).await;
            if let Ok(n) = &named {
                let _ = named_tx.send(n.clone());
            }
            named
        };
        let rest = async {
            let caller = caller::identify(&clients).await?;
            // The wrong account stops here, before the account is read and long before any write.
            stack.check_account(&args.expect_account, &caller.account_id)?;
            let r = Session::render(printer, args, &stack, &clients, &caller, &spinner).await?;
            let early = async {
                match early {
                    true => EarlyChecks::start(&clients, &caller, &r, named_rx.await.ok()?).await,
                    false => None,
                }
            };
            let account = resources::observe_account_part(&clients, &r.desired, r.user.as_deref(), false);
            let (account, early) = tokio::join!(account, early);
            Ok::<_, Error>((caller, r, account, early))
        };
        let (rest, named) = tokio::join!(rest, named);
        spinner.finish_and_clear();
        // Who the caller is (or why that failed) comes first: it explains any error of the reads.
        let (caller, Rendered { desired, user, hardening }, account, early) = rest?;
        let observed = resources::Observed::assemble(&desired, named?, account?)?;
        let organisation = crate::organisation::Reader::new(clients.clone());
        Ok((Session { clients, caller, desired, user, hardening, organisation }, observed, early))
    }

    /// Render the stack for the caller's account and settle the operator user (which may ask on a terminal).
    async fn render(
        printer: &Printer,
        args: &StackArgs,
        stack: &Stack,
        clients: &Clients,
        caller: &Caller,
        spinner: &indicatif::ProgressBar,
    ) -> Result<Rendered> {
        spinner.suspend(|| {
            printer.info(&format!("Caller: {} (account {}, {})", caller.arn, caller.account_id, caller.partition));
            if caller.kind == CallerKind::Root {
                printer
                    .warn("you are using the account's root credentials; use an IAM user or role for day-to-day work");
            }
        });
        let target = Target {
            partition: caller.partition.clone(),
            account_id: caller.account_id.clone(),
            region: clients.region.clone(),
        };
        // ARNs written for another partition than the caller's: known only now, still before any write.
        lint::gate(printer, stack, Some(&target), false, "nothing was written")?;
        let mut desired = stack.render(&target)?;
        let hardening = if args.harden { Some(harden::harden(&mut desired)?) } else { None };
        let user = resolve_user(printer, args, clients, caller, &desired, spinner).await?;
        Ok(Rendered { desired, user, hardening })
    }
}

/// What a writing run checks before its first write — that the stack's AWS-managed policies exist, and that the
/// caller may make the changes — started before the observation is complete, for the plan the names alone
/// give ([`resources::NamedObservation::provisional`]): the stack's policies taken as absent, the operator user
/// as lacking all of its policies. That plan's changes include the real plan's, except a new version of a
/// policy that exists with another document; `bootstrap` checks what the real plan needs beyond these.
pub(crate) struct EarlyChecks {
    /// The AWS-managed policy ARNs whose existence was checked, and the outcome.
    pub(crate) managed_checked: BTreeSet<String>,
    pub(crate) managed: Result<()>,
    /// The verdict on every permission the provisional plan needs, and how they were reached.
    pub(crate) permissions: Vec<PermissionCheck>,
    pub(crate) method: String,
}

impl EarlyChecks {
    async fn start(
        clients: &Clients,
        caller: &Caller,
        r: &Rendered,
        named: resources::NamedObservation,
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
        let (managed, (permissions, method)) = tokio::join!(
            crate::resources::managed_policy::check_exist(clients, &unseen),
            perms::check(clients, caller, &needed)
        );
        Some(EarlyChecks { managed_checked, managed, permissions, method })
    }
}

/// The stack rendered for the caller's account (hardened with `--harden`), and the operator user.
struct Rendered {
    desired: Desired,
    user: Option<String>,
    hardening: Option<Vec<harden::Note>>,
}

/// The validated stack and the clients; the stack and the flags are checked before any AWS call.
async fn prepare(printer: &Printer, aws: &AwsSettings, args: &StackArgs) -> Result<(Stack, Clients)> {
    let stack = validated_stack(printer, args)?;
    let clients = Clients::connect(aws).await?;
    Ok((stack, clients))
}

/// The stack `--stack` names, validated (its documents as IAM validates them: warnings are printed), and
/// `--user-name` checked: bad input fails before any AWS call.
pub(crate) fn validated_stack(printer: &Printer, args: &StackArgs) -> Result<Stack> {
    let stack = Stack::resolve(args.stack.as_deref())?.with_flags(args.permissions_boundary.as_deref(), &args.tags)?;
    lint::gate(printer, &stack, None, true, "nothing was sent to AWS")?;
    if let Some(u) = &args.user_name {
        if !prompt::valid_user_name(u) {
            return Err(Error::usage(format!("--user-name `{u}` is not a valid IAM user name"))
                .with_help("IAM user names are 1-64 letters, digits and _+=,.@-"));
        }
    }
    Ok(stack)
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

pub(crate) use crate::wording::plural;

/// Progress of an apply on stderr: a bar, each change's outcome with -v, failures always, and each distinct
/// thing waited for once.
pub(crate) struct ApplyProgress<'a> {
    pub(crate) printer: &'a Printer,
    pub(crate) bar: indicatif::ProgressBar,
    /// Names the account in multi-account runs ("account 111122223333: "); empty otherwise.
    pub(crate) prefix: &'a str,
    /// How a change someone else already made is described ("already done by someone else", "already gone").
    pub(crate) already_done: &'static str,
    told: std::sync::Mutex<BTreeSet<String>>,
}

impl<'a> ApplyProgress<'a> {
    pub(crate) fn new(printer: &'a Printer, bar: indicatif::ProgressBar, prefix: &'a str) -> Self {
        ApplyProgress { printer, bar, prefix, already_done: "already done by someone else", told: Default::default() }
    }
}

impl ApplyObserver for ApplyProgress<'_> {
    fn finished(&self, change: &PlannedChange, outcome: &Outcome) {
        self.bar.inc(1);
        let line = match outcome {
            Outcome::Done => format!("done: {} ({})", change.change.operation(), change.change),
            Outcome::AlreadyDone => format!("{}: {} ({})", self.already_done, change.change.operation(), change.change),
            Outcome::Held => format!("held back (needs --adopt): {}", change.change),
            Outcome::Skipped { reason } => format!("not started: {} ({reason})", change.change.operation()),
            Outcome::Failed { error } => {
                self.bar.suspend(|| self.printer.error(&format!("{}{error}", self.prefix)));
                return;
            }
        };
        if self.printer.verbosity >= 1 {
            self.bar.suspend(|| self.printer.detail(&format!("{}{line}", self.prefix)));
        }
    }

    fn waiting(&self, what: &str) {
        // Several changes may wait for the same thing (concurrent writes to one user): said once.
        let first = self.told.lock().map(|mut t| t.insert(what.to_string())).unwrap_or(true);
        if first {
            self.bar.suspend(|| self.printer.info(&format!("{}{what}", self.prefix)));
        }
    }
}

/// Ctrl-C sets `flag`: requests in flight finish, no new change starts.
pub(crate) fn watch_interrupt(flag: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
            eprintln!("\ninterrupted: letting the requests in flight finish; no new change is started");
        }
    })
}
