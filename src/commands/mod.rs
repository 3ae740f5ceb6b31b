//! Commands: each is a verb that drives the engine and prints through the printer.

pub(crate) mod accounts;
#[cfg(feature = "ec2")]
pub(crate) mod attach;
pub(crate) mod bootstrap;
pub(crate) mod check;
pub(crate) mod docs;
pub(crate) mod export;
pub(crate) mod plan;
pub(crate) mod stacks;
pub(crate) mod whoami;

use crate::aws::{errors, AwsSettings, Clients};
use crate::cli::StackArgs;
use crate::error::{Error, Result};
use crate::output::Printer;
use crate::prompt;
use crate::resources::caller::{self, Caller, CallerKind};
use crate::stack::{Desired, Stack, Target};

/// How a command ended; mapped to the process exit code in one place (README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    Success,
    /// `plan --detailed-exitcode` found changes, or `bootstrap` left changes held back.
    ChangesPending,
    /// `check` found something the bootstrap needs missing.
    CheckFailed,
}

impl ExitStatus {
    pub(crate) fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::ChangesPending => 2,
            ExitStatus::CheckFailed => 3,
        }
    }
}

/// What every account-facing command starts from: a validated stack, clients, the caller and the rendering.
pub(crate) struct Session {
    pub(crate) clients: Clients,
    pub(crate) caller: Caller,
    pub(crate) desired: Desired,
    pub(crate) user: Option<String>,
}

impl Session {
    /// Loads and validates the stack first, so bad input fails before any AWS call.
    pub(crate) async fn open(printer: &Printer, aws: &AwsSettings, args: &StackArgs) -> Result<Session> {
        let stack = Stack::resolve(args.stack.as_deref())?;
        if let Some(u) = &args.user_name {
            if !prompt::valid_user_name(u) {
                return Err(Error::usage(format!("--user-name `{u}` is not a valid IAM user name"))
                    .with_help("IAM user names are 1-64 letters, digits and _+=,.@-"));
            }
        }
        let clients = Clients::connect(aws).await?;
        let spinner = printer.spinner("identifying the caller");
        let caller = caller::identify(&clients).await;
        spinner.finish_and_clear();
        let caller = caller?;
        printer.info(&format!("Caller: {} (account {}, {})", caller.arn, caller.account_id, caller.partition));
        if caller.kind == CallerKind::Root {
            printer.warn("you are using the account's root credentials; use an IAM user or role for day-to-day work");
        }
        let target = Target {
            partition: caller.partition.clone(),
            account_id: caller.account_id.clone(),
            region: clients.region.clone(),
        };
        let desired = stack.render(&target)?;
        let user = resolve_user(printer, args, &clients, &caller, &desired).await?;
        Ok(Session { clients, caller, desired, user })
    }
}

async fn resolve_user(
    printer: &Printer,
    args: &StackArgs,
    clients: &Clients,
    caller: &Caller,
    desired: &Desired,
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
            let Some(name) = prompt::user_name(printer, caller.user_name.as_deref())? else { return Ok(None) };
            match clients.limit(clients.iam.get_user().user_name(&name).send()).await {
                Err(e) if errors::is_no_such_entity(&e) => {
                    printer.warn(&format!("there is no IAM user `{name}` in account {}", caller.account_id));
                }
                // Found, or not ours to know (no iam:GetUser): the plan will tell.
                _ => return Ok(Some(name)),
            }
        }
    }
    match &caller.user_name {
        Some(u) => Ok(Some(u.clone())),
        None => {
            printer.warn(
                "the caller is not an IAM user, so no operator user's policies are checked (pass --user-name NAME)",
            );
            Ok(None)
        }
    }
}
