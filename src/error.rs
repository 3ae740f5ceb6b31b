//! One error type for the whole tool: what failed, why, and what to do next.
//!
//! Every error maps to exactly one process exit code (see [`ErrorKind::exit_code`] and docs/commands.md "Exit codes").

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Bad flags or a missing confirmation where no terminal can give it.
    Usage,
    /// A stack file, template or other user-supplied data is invalid.
    Input,
    /// AWS refused or failed a call, or the account is not in a state we can work from.
    Aws,
    /// The caller lacks something the bootstrap needs (pre-flight check).
    CheckFailed,
    /// The run was interrupted (Ctrl-C).
    Interrupted,
    /// A role does not work for its service (`bootstrap --wait`: a probe did not pass in time).
    VerifyFailed,
}

impl ErrorKind {
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Aws => 1,
            ErrorKind::CheckFailed => 3,
            ErrorKind::VerifyFailed => 5,
            ErrorKind::Usage => 64,
            ErrorKind::Input => 65,
            ErrorKind::Interrupted => 130,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Error {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
    /// The AWS error code behind it, when AWS answered with one (a value, never read back out of `message`).
    pub(crate) code: Option<String>,
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), help: None, code: None }
    }
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }
    pub(crate) fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Input, message)
    }
    pub(crate) fn aws(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Aws, message)
    }
    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub(crate) fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
    /// True when AWS answered with this error code.
    pub(crate) fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
    /// Prefix the message with where it happened ("profiles/x.toml: ...").
    pub(crate) fn context(mut self, ctx: impl fmt::Display) -> Self {
        self.message = format!("{ctx}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
