//! The kinds of IAM resource a stack ensures. Each module observes its kind (read-only calls only) and diffs
//! the observation against the desired state, giving plan values; the engine applies them.

pub(crate) mod caller;
#[cfg(feature = "ec2")]
pub(crate) mod instance;
pub(crate) mod instance_profile;
pub(crate) mod managed_policy;
pub(crate) mod permissions;
pub(crate) mod policy;
pub(crate) mod role;
pub(crate) mod service_linked_role;
pub(crate) mod services;
pub(crate) mod user;

use serde::Serialize;

/// Tag put on everything wfboot creates, valued with the stack name.
pub(crate) const OWNER_TAG: &str = "wfboot:stack";

/// Who a resource belongs to, as far as wfboot can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Ownership {
    /// Does not exist yet.
    Absent,
    /// Created by wfboot for this stack (tagged).
    Stack,
    /// Exists, but wfboot did not create it (or created it for another stack): changed only with consent.
    Foreign,
    /// Owned by AWS (service-linked roles) or the operator's own user: never tagged.
    External,
}

impl Ownership {
    pub(crate) fn from_tags<'a>(stack: &str, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Ownership {
        let owner = tags.into_iter().find(|(k, _)| *k == OWNER_TAG).map(|(_, v)| v);
        if owner == Some(stack) {
            Ownership::Stack
        } else {
            Ownership::Foreign
        }
    }
}

pub(crate) fn owner_tag(stack: &str) -> aws_sdk_iam::types::Tag {
    aws_sdk_iam::types::Tag::builder().key(OWNER_TAG).value(stack).build().expect("key and value are set")
}
