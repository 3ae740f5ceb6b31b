//! Command-line definition. Flags are resolved into settings before any work starts.

use clap::{Args, Parser, Subcommand, ValueEnum};

// The headings `--help` groups the flags under.
const AWS: &str = "AWS";
const STACK: &str = "Stack";
const FLEET: &str = "Fleet (many accounts)";
const ORG: &str = "Organisation (--org-unit: a service-managed StackSet)";
const SAFETY: &str = "Safety and propagation";
const OUTPUT: &str = "Output";

#[derive(Debug, Parser)]
#[command(
    name = "wfboot",
    version,
    about = "Bootstrap an AWS account for Batch / Lambda / Step Functions workflow stacks, idempotently",
    long_about = "wfboot checks who you are, shows a plan, asks before it writes, creates or repairs exactly what \
                  is missing, and verifies the result. Re-running it is always safe.",
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// AWS profile from the shared config files [env: AWS_PROFILE]
    #[arg(long, global = true, value_name = "NAME", help_heading = AWS)]
    pub(crate) profile: Option<String>,
    /// AWS region [env: AWS_REGION]
    #[arg(long, global = true, value_name = "REGION", help_heading = AWS)]
    pub(crate) region: Option<String>,
    /// Send every AWS request to this URL (an emulator, a VPC endpoint) [env: AWS_ENDPOINT_URL]
    #[arg(long, global = true, value_name = "URL", help_heading = AWS)]
    pub(crate) endpoint_url: Option<String>,
    /// Attempts per AWS request, first try included, for throttling, 5xx answers and broken connections
    /// (backoff with jitter from 0.5 s, doubling up to 8 s; a write whose answer was lost is read back first)
    #[arg(long, global = true, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=25),
          help_heading = AWS)]
    pub(crate) retry_attempts: u32,
    /// Most AWS requests in flight at once (IAM throttles aggressive clients; throttled requests are retried)
    #[arg(long, global = true, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=64),
          help_heading = AWS)]
    pub(crate) max_concurrency: u32,
    /// Output format of the result on stdout
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text, help_heading = OUTPUT)]
    pub(crate) output: OutputFormat,
    /// Print only errors and the result
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = OUTPUT)]
    pub(crate) quiet: bool,
    /// More detail on stderr (-v: steps, -vv: AWS calls, -vvv: SDK internals)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = OUTPUT)]
    pub(crate) verbose: u8,
    /// Never show progress bars
    #[arg(long, global = true, help_heading = OUTPUT)]
    pub(crate) no_progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show what `bootstrap` would change, without changing anything
    Plan(PlanArgs),
    /// Create or repair the stack's roles, policies and instance profiles
    Bootstrap(BootstrapArgs),
    /// Delete what wfboot created for the stack (tagged with it); everything else is listed and left alone
    Destroy(DestroyArgs),
    /// Check the caller, the operator user's policies, the permissions bootstrap needs, and the services
    Check(CheckArgs),
    /// List the built-in stacks, or show one rendered
    Stacks(StacksArgs),
    /// Associate an instance profile with an EC2 instance (or replace its profile), idempotently
    #[cfg(feature = "ec2")]
    Attach(AttachArgs),
    /// List the instance ⇄ instance-profile associations of the region, with each instance's metadata options
    #[cfg(feature = "ec2")]
    Instances(InstancesArgs),
    /// Which credentials wfboot would use, where they come from, and whose they are
    Whoami,
    /// Print a shell completion script (install.sh installs them)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
    /// Print the stack as a CloudFormation template (for StackSets); offline, no AWS call
    Export(ExportArgs),
    /// Validate stacks as IAM validates them, offline, and list every finding (for CI)
    Lint(LintArgs),
    /// Check that each role works for its service: trust, permissions and (--live) the services themselves
    Verify(VerifyArgs),
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = STACK)]
pub(crate) struct StackArgs {
    /// Built-in stack name or path to a stack .toml file
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) stack: Option<String>,
    /// The operator's IAM user whose managed policies are checked (default: the caller, if an IAM user)
    #[arg(long, value_name = "NAME", conflicts_with = "skip_user")]
    pub(crate) user_name: Option<String>,
    /// Leave the operator user's policies out of the plan
    #[arg(long)]
    pub(crate) skip_user: bool,
    /// Add confused-deputy conditions (aws:SourceAccount, aws:SourceArn) to service-role trust documents, for
    /// the services that support them
    #[arg(long)]
    pub(crate) harden: bool,
    /// Permissions boundary of the stack's roles: a customer managed policy's name, or a policy ARN ({{partition}}
    /// and {{account_id}} allowed); replaces the stack's `permissions_boundary` (roles with their own keep it)
    #[arg(long, value_name = "NAME|ARN")]
    pub(crate) permissions_boundary: Option<String>,
    /// A tag for the stack's roles, policies and instance profiles, beside wfboot:stack (repeatable; over the
    /// stack's [tags])
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = tag)]
    pub(crate) tags: Vec<(String, String)>,
    /// Refuse to run unless the caller's account is this one (repeatable: any of them; with --accounts, every
    /// listed account must be); checked right after sts:GetCallerIdentity, before any write
    #[arg(long, value_name = "ID", value_parser = account_id, help_heading = SAFETY)]
    pub(crate) expect_account: Vec<String>,
}

/// Many accounts: from one machine through sts:AssumeRole (`--accounts`), or through a service-managed CloudFormation
/// StackSet over organisational units (`--org-unit`), which deploys to every account of them and every account that
/// joins them later.
#[derive(Debug, Args)]
#[command(next_help_heading = FLEET)]
#[command(group(clap::ArgGroup::new("targets").args(["accounts", "org_units"]).multiple(true)))]
pub(crate) struct AccountsArgs {
    /// Run in every account listed in FILE (one 12-digit id per line; `#` starts a comment)
    #[arg(long, value_name = "FILE", requires = "assume_role_name", conflicts_with = "org_units")]
    pub(crate) accounts: Option<std::path::PathBuf>,
    /// The role to assume in each account of --accounts (it must trust the caller); with --org-unit, the role
    /// wfboot reads each account through before deploying (default OrganizationAccountAccessRole)
    #[arg(long, value_name = "NAME", requires = "targets")]
    pub(crate) assume_role_name: Option<String>,
    /// External id to pass to sts:AssumeRole, when the roles' trust policies require one
    #[arg(long, value_name = "ID", requires = "targets")]
    pub(crate) external_id: Option<String>,
    /// Most accounts worked on at once (each with up to --max-concurrency requests in flight; the default is the
    /// fleet benchmark's choice: docs/accounts.md "Concurrency"); with --org-unit, the accounts read at once
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub(crate) max_accounts: u32,
    #[command(flatten)]
    pub(crate) org: OrgArgs,
}

/// `--org-unit` and the StackSet's settings (docs/org-units.md).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = ORG)]
pub(crate) struct OrgArgs {
    /// Deploy with a service-managed StackSet to every account of this organisational unit (ou-...), or of the
    /// whole organisation (the root, r-...), and to every account that joins it later (repeatable)
    #[arg(long = "org-unit", value_name = "OU_ID", value_parser = org_unit_id)]
    pub(crate) org_units: Vec<String>,
    /// Who calls CloudFormation: the organisation's management account (self), or a delegated administrator
    /// for StackSets (CloudFormation's CallAs=DELEGATED_ADMIN)
    #[arg(long, value_enum, default_value_t = CallAs::SelfAccount, requires = "org_units")]
    pub(crate) call_as: CallAs,
    /// The StackSet's name (default: wfboot-<stack>)
    #[arg(long, value_name = "NAME", value_parser = stack_set_name, requires = "org_units")]
    pub(crate) stack_set_name: Option<String>,
    /// Do not read each account before deploying (no sts:AssumeRole into them): a resource of the stack that
    /// exists there and that CloudFormation does not own, and a service-linked role that exists, are then not
    /// found in advance (CloudFormation fails that account's stack instance instead), and verify shows only the
    /// instances' status
    #[arg(long, requires = "org_units")]
    pub(crate) skip_account_reads: bool,
    /// How many accounts' stack instances may fail before CloudFormation stops the operation: a count, or a
    /// percentage of the accounts (CloudFormation's FailureToleranceCount / FailureTolerancePercentage)
    #[arg(long, value_name = "N|N%", default_value = "100%", value_parser = amount, requires = "org_units")]
    pub(crate) failure_tolerance: Amount,
    /// How many accounts CloudFormation deploys to at once: a count, or a percentage of the accounts
    /// (MaxConcurrentCount / MaxConcurrentPercentage)
    #[arg(long, value_name = "N|N%", default_value = "100%", value_parser = amount, requires = "org_units")]
    pub(crate) deploy_concurrency: Amount,
    /// soft: keep deploying at --deploy-concurrency whatever fails (SOFT_FAILURE_TOLERANCE); strict: lower the
    /// concurrency as failures approach --failure-tolerance (STRICT_FAILURE_TOLERANCE)
    #[arg(long, value_enum, default_value_t = ConcurrencyMode::Soft, requires = "org_units")]
    pub(crate) concurrency_mode: ConcurrencyMode,
    /// How long to wait for a StackSet operation (ours, or one already running) before stopping with a clear
    /// error (the operation goes on in CloudFormation)
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, requires = "org_units")]
    pub(crate) operation_timeout: u64,
}

impl OrgArgs {
    pub(crate) fn active(&self) -> bool {
        !self.org_units.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CallAs {
    // The organisation's management account (CallAs=SELF). (No doc comments on the values: they would turn every
    // verb's --help into its long form.)
    #[value(name = "self")]
    SelfAccount,
    // A delegated administrator for StackSets (CallAs=DELEGATED_ADMIN).
    DelegatedAdmin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ConcurrencyMode {
    Soft,
    Strict,
}

/// A count of accounts, or a percentage of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Amount {
    Count(u32),
    Percentage(u32),
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) stack: StackArgs,
    #[command(flatten)]
    pub(crate) accounts: AccountsArgs,
    /// Exit 0 when nothing would change, 2 when changes are pending (1 and others: errors)
    #[arg(long, help_heading = OUTPUT)]
    pub(crate) detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) stack: StackArgs,
    #[command(flatten)]
    pub(crate) accounts: AccountsArgs,
    /// Print the least-privilege IAM policy the caller needs to apply the current plan, and exit
    #[arg(long, conflicts_with_all = ["accounts", "org_units"], help_heading = OUTPUT)]
    pub(crate) print_policy: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BootstrapArgs {
    #[command(flatten)]
    pub(crate) stack: StackArgs,
    #[command(flatten)]
    pub(crate) accounts: AccountsArgs,
    /// Apply without asking
    #[arg(short, long, help_heading = SAFETY)]
    pub(crate) yes: bool,
    /// Also change resources wfboot did not create (trust documents, policies) without asking
    #[arg(long, conflicts_with = "org_units", help_heading = SAFETY)]
    pub(crate) adopt: bool,
    /// How long to wait for IAM to propagate a new role or profile before giving up (and, with --wait, for
    /// each service to accept the roles)
    #[arg(long, value_name = "SECONDS", default_value_t = 120, help_heading = SAFETY)]
    pub(crate) propagation_timeout: u64,
    /// Return only once the services accept the roles: each service's `verify --live` probe starts as soon as its
    /// roles are written and read back, and its time to usable is told as it comes. SERVICE: ec2, lambda, states,
    /// batch, spotfleet, comma-separated (alone: every service the stack serves); with --accounts, in every account
    #[arg(long, value_name = "SERVICE,...", num_args = 0..=1, default_missing_value = "all", value_delimiter = ',',
          value_parser = wait_for, conflicts_with = "org_units", help_heading = SAFETY)]
    pub(crate) wait: Option<Vec<WaitFor>>,
}

impl BootstrapArgs {
    /// `--wait`'s services: `None` without `--wait`, every service the stack serves for `Some(empty)`.
    pub(crate) fn wait_for(&self) -> Option<Vec<crate::verify::Service>> {
        let names = self.wait.as_ref()?;
        if names.iter().any(|w| w.0.is_none()) {
            return Some(Vec::new());
        }
        let mut services: Vec<crate::verify::Service> = names.iter().filter_map(|w| w.0).collect();
        services.sort();
        services.dedup();
        Some(services)
    }
}

/// One name of `--wait SERVICE,...`; `all` (what `--wait` alone stands for) is `None`: every service the stack serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitFor(pub(crate) Option<crate::verify::Service>);

/// `--wait`'s names, checked before anything else (a usage error lists the valid ones).
fn wait_for(s: &str) -> std::result::Result<WaitFor, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(WaitFor(None));
    }
    crate::verify::Service::parse(s).map(|s| WaitFor(Some(s))).ok_or_else(|| {
        format!(
            "unknown service `{s}`: name one or more of {}, separated by commas (or `--wait` alone for every service \
             the stack serves)",
            crate::verify::Service::valid_names()
        )
    })
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Built-in stack name or path to a stack .toml file
    #[arg(long, value_name = "NAME|FILE", help_heading = STACK)]
    pub(crate) stack: Option<String>,
    /// Also ask the services: EC2 RunInstances (dry run), Lambda CreateFunction, Step Functions
    /// CreateStateMachine and Batch CreateComputeEnvironment with the roles (each probe resource deleted again)
    #[arg(long, help_heading = SAFETY)]
    pub(crate) live: bool,
    /// Read the stack's trust documents as `--harden` writes them (only which services a role is for matters)
    #[arg(long, help_heading = STACK)]
    pub(crate) harden: bool,
    /// How long each live probe waits for its service to accept a new role
    #[arg(long, value_name = "SECONDS", default_value_t = 120, help_heading = SAFETY)]
    pub(crate) propagation_timeout: u64,
    #[command(flatten)]
    pub(crate) accounts: AccountsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DestroyArgs {
    /// Built-in stack name or path to a stack .toml file
    #[arg(long, value_name = "NAME|FILE", help_heading = STACK)]
    pub(crate) stack: Option<String>,
    /// Delete without asking
    #[arg(short, long, conflicts_with = "dry_run", help_heading = SAFETY)]
    pub(crate) yes: bool,
    /// Show what would be deleted and left alone, and stop (no prompt, no write)
    #[arg(long, help_heading = SAFETY)]
    pub(crate) dry_run: bool,
    /// Delete roles, instance profiles and policies that something still uses (a compute environment, a function,
    /// a state machine, an instance, a role outside the stack), or whose users could not be checked: they break
    #[arg(long, help_heading = SAFETY)]
    pub(crate) force: bool,
    /// Also delete the stack's service-linked roles (shared by the whole account; AWS refuses while in use)
    #[arg(long, help_heading = SAFETY)]
    pub(crate) include_service_linked_roles: bool,
    /// How long to wait for AWS to finish deleting a service-linked role before reporting it
    #[arg(long, value_name = "SECONDS", default_value_t = 120, help_heading = SAFETY)]
    pub(crate) deletion_timeout: u64,
    /// How long to retry a delete IAM refuses while it still sees a link this run removed (DeleteConflict),
    /// concurrent writes (ConcurrentModification), and to wait for IAM to show the deletions
    #[arg(long, value_name = "SECONDS", default_value_t = 120, help_heading = SAFETY)]
    pub(crate) propagation_timeout: u64,
    /// Refuse to run unless the caller's account is this one (repeatable: any of them; with --accounts, every
    /// listed account must be); checked right after sts:GetCallerIdentity, before any write
    #[arg(long, value_name = "ID", value_parser = account_id, help_heading = SAFETY)]
    pub(crate) expect_account: Vec<String>,
    #[command(flatten)]
    pub(crate) accounts: AccountsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StacksArgs {
    #[command(subcommand)]
    pub(crate) command: Option<StacksCommand>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum StacksCommand {
    /// List the built-in stacks (the default)
    List,
    /// Print a stack with its documents rendered for an account
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// Built-in stack name or path to a stack .toml file
    #[arg(value_name = "NAME|FILE")]
    pub(crate) stack: String,
    /// Render for this account instead of asking AWS (offline; needs no credentials)
    #[arg(long, value_name = "ID")]
    pub(crate) account_id: Option<String>,
    /// Partition to render for with --account-id
    #[arg(long, default_value = "aws", value_parser = crate::stack::partitions::parse_id, requires = "account_id")]
    pub(crate) partition: String,
    /// Show the trust documents with the confused-deputy conditions `--harden` adds
    #[arg(long)]
    pub(crate) harden: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AttachArgs {
    /// The instance, e.g. i-0123456789abcdef0
    #[arg(long, value_name = "ID", required_unless_present = "list")]
    pub(crate) instance_id: Option<String>,
    /// The instance profile to associate
    #[arg(long, value_name = "NAME", conflicts_with_all = ["role", "stack"])]
    pub(crate) instance_profile: Option<String>,
    /// Use the stack's instance profile that holds this role
    #[arg(long, value_name = "ROLE")]
    pub(crate) role: Option<String>,
    /// Stack to look the role up in (with --role; default: the default stack)
    #[arg(long, value_name = "NAME|FILE", requires = "role")]
    pub(crate) stack: Option<String>,
    /// Replace an existing association without asking
    #[arg(short, long, conflicts_with = "dry_run")]
    pub(crate) yes: bool,
    /// Require IMDSv2 on the instance first (ModifyInstanceMetadataOptions HttpTokens=required, its other options
    /// kept), once its MetadataNoToken metric shows no IMDSv1 call in the last 14 days
    #[arg(long, help_heading = SAFETY)]
    pub(crate) require_imdsv2: bool,
    /// With --require-imdsv2: require it even though the metric shows IMDSv1 calls (or cannot be read)
    #[arg(long, requires = "require_imdsv2", help_heading = SAFETY)]
    pub(crate) force: bool,
    /// Show what would be changed, and stop (no prompt, no write)
    #[arg(long, help_heading = SAFETY)]
    pub(crate) dry_run: bool,
    /// List the associations of the region instead (same as `wfboot instances`)
    #[arg(long, conflicts_with_all = ["instance_id", "instance_profile", "role", "stack", "yes", "require_imdsv2",
                                      "force", "dry_run"])]
    pub(crate) list: bool,
    /// How long to wait for a new instance profile to become usable by EC2
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub(crate) propagation_timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct InstancesArgs {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// A CloudFormation template (JSON), e.g. for StackSets
    #[value(name = "cloudformation")]
    CloudFormation,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Template format
    #[arg(long, value_enum, default_value_t = ExportFormat::CloudFormation)]
    pub(crate) format: ExportFormat,
    /// Built-in stack name or path to a stack .toml file
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) stack: Option<String>,
    /// Add confused-deputy conditions (aws:SourceAccount, aws:SourceArn) to service-role trust documents, for
    /// the services that support them
    #[arg(long)]
    pub(crate) harden: bool,
    /// Permissions boundary of the stack's roles: a customer managed policy's name, or a policy ARN ({{partition}}
    /// and {{account_id}} allowed); replaces the stack's `permissions_boundary` (roles with their own keep it)
    #[arg(long, value_name = "NAME|ARN")]
    pub(crate) permissions_boundary: Option<String>,
    /// A tag for the stack's roles, policies and instance profiles, beside wfboot:stack (repeatable; over the
    /// stack's [tags])
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = tag)]
    pub(crate) tags: Vec<(String, String)>,
    /// Append SUFFIX to every role, policy and instance profile name (and to the ARNs of them in the documents),
    /// so that a second copy of the stack fits in the same account, e.g. a StackSet in two regions
    #[arg(long, value_name = "SUFFIX", default_value = "")]
    pub(crate) name_suffix: String,
}

#[derive(Debug, Args)]
pub(crate) struct LintArgs {
    /// Built-in stack name or path to a stack .toml file (repeat for several; default: the default stack)
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) stack: Vec<String>,
    /// Render the documents for this account (default: a sample account id)
    #[arg(long, value_name = "ID", value_parser = account_id)]
    pub(crate) account_id: Option<String>,
    /// The account's partition: ARNs in another partition are errors (default: any partition is accepted)
    #[arg(long, value_parser = crate::stack::partitions::parse_id)]
    pub(crate) partition: Option<String>,
    /// The account's quota of managed policies per role, if it was raised (IAM's default: 10)
    #[arg(long, value_name = "N", default_value_t = crate::validate::quotas::DEFAULT_ROLE_POLICY_QUOTA as u32,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub(crate) role_policy_quota: u32,
    /// Exit non-zero on warnings too
    #[arg(long)]
    pub(crate) deny_warnings: bool,
}

/// An organisational unit or root id, by the pattern CloudFormation's DeploymentTargets.OrganizationalUnitIds
/// accepts (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DeploymentTargets.html), which is
/// Organizations' own for OU and root ids.
fn org_unit_id(s: &str) -> std::result::Result<String, String> {
    if valid_org_unit_id(s) {
        Ok(s.to_string())
    } else {
        Err("an organisational unit id is ou- then 4-32 and 8-32 lowercase letters or digits (ou-ab12-cd34ef56), \
             the root r- then 4-32 (r-ab12); `aws organizations list-roots` and \
             `list-organizational-units-for-parent` list them"
            .into())
    }
}

/// `ou-` + 4-32 + `-` + 8-32 lowercase letters or digits, or `r-` + 4-32.
pub(crate) fn valid_org_unit_id(id: &str) -> bool {
    let part = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if let Some(rest) = id.strip_prefix("ou-") {
        return rest.split_once('-').is_some_and(|(a, b)| part(a, 4, 32) && part(b, 8, 32));
    }
    id.strip_prefix("r-").is_some_and(|rest| part(rest, 4, 32))
}

/// A StackSet name: a letter, then letters, digits and hyphens, at most 128 (CreateStackSet's StackSetName,
/// https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStackSet.html).
pub(crate) fn valid_stack_set_name(name: &str) -> bool {
    name.len() <= 128
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn stack_set_name(s: &str) -> std::result::Result<String, String> {
    if valid_stack_set_name(s) {
        Ok(s.to_string())
    } else {
        Err("a StackSet name is 1-128 letters, digits and hyphens, starting with a letter".into())
    }
}

/// `N` or `N%`: a count of accounts (at least 0 for a tolerance, 1 for a concurrency: checked where it is used),
/// or a percentage from 0 to 100.
fn amount(s: &str) -> std::result::Result<Amount, String> {
    let bad = || "give a number of accounts (3) or a percentage of them (25%)".to_string();
    match s.strip_suffix('%') {
        Some(p) => match p.parse::<u32>() {
            Ok(n) if n <= 100 => Ok(Amount::Percentage(n)),
            _ => Err("a percentage is 0% to 100%".into()),
        },
        None => s.parse::<u32>().map(Amount::Count).map_err(|_| bad()),
    }
}

fn account_id(s: &str) -> std::result::Result<String, String> {
    if crate::stack::is_account_id(s) {
        Ok(s.to_string())
    } else {
        Err("an account id is 12 digits".into())
    }
}

/// `--tag KEY=VALUE`: split at the first `=` (a value may hold `=`); the key and value are checked with the stack's
/// tags, as IAM checks them.
fn tag(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("a tag is KEY=VALUE (the value may be empty: KEY=)".into()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::verify::Service;

    #[test]
    fn org_unit_ids_are_checked_by_cloudformations_pattern() {
        for ok in ["ou-ab12-cd34ef56", "r-ab12", "ou-abcd-12345678", &format!("r-{}", "a".repeat(32))] {
            assert!(valid_org_unit_id(ok), "{ok}");
        }
        for bad in
            ["", "ou-ab1-cd34ef56", "ou-AB12-cd34ef56", "ou-ab12-cd34ef5", "r-ab1", "ab12", "ou-ab12", "123456789012"]
        {
            assert!(!valid_org_unit_id(bad), "{bad}");
        }
    }

    #[test]
    fn stack_set_names_and_amounts_are_checked_as_cloudformation_does() {
        assert!(!valid_stack_set_name("1abc") && !valid_stack_set_name("a_b") && valid_stack_set_name("a-1"));
        assert!(!valid_stack_set_name(&"a".repeat(129)));
        assert_eq!(amount("25%"), Ok(Amount::Percentage(25)));
        assert_eq!(amount("3"), Ok(Amount::Count(3)));
        assert!(amount("101%").is_err() && amount("-1").is_err() && amount("x").is_err());
    }

    fn wait_of(args: &[&str]) -> Option<Vec<Service>> {
        let cli = Cli::try_parse_from([&["wfboot", "bootstrap"], args].concat()).unwrap();
        match cli.command {
            Command::Bootstrap(b) => b.wait_for(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn wait_alone_means_every_service_and_names_pick_some_in_any_order_and_case() {
        assert_eq!(wait_of(&[]), None);
        assert_eq!(wait_of(&["--wait"]), Some(vec![]));
        assert_eq!(wait_of(&["--wait", "--yes"]), Some(vec![]), "a flag after --wait is not a service");
        assert_eq!(wait_of(&["--wait", "batch,Lambda"]), Some(vec![Service::Lambda, Service::Batch]));
        assert_eq!(wait_of(&["--wait=stepfunctions"]), Some(vec![Service::States]));
        assert_eq!(wait_of(&["--wait", "lambda,all"]), Some(vec![]));
        let err = Cli::try_parse_from(["wfboot", "bootstrap", "--wait", "lamda"]).unwrap_err().to_string();
        assert!(err.contains("unknown service `lamda`") && err.contains("lambda (Lambda)"), "{err}");
    }
}
