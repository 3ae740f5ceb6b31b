//! Commands: each is a verb that takes the steps of the pipeline it needs ([`crate::pipeline`]), in one account or
//! over a fleet (`--accounts`) alike, and says how its result reads.

#[cfg(feature = "ec2")]
pub(crate) mod attach;
pub(crate) mod bootstrap;
pub(crate) mod check;
pub(crate) mod destroy;
pub(crate) mod docs;
pub(crate) mod export;
pub(crate) mod lint;
pub(crate) mod plan;
pub(crate) mod stacks;
pub(crate) mod verify;
pub(crate) mod whoami;

pub(crate) use crate::pipeline::ExitStatus;
pub(crate) use crate::wording::plural;
