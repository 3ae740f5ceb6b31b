//! The words every kind shares, below the kinds and the registry: the ownership tag and what it tells
//! ([`Ownership`]), and the keys a change's dependencies are named with ([`Key`]). A kind's file takes these from
//! here, never from the registry (`resources/mod.rs`), which imports every kind.

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

/// The resource carries this stack's ownership tag.
pub(crate) fn owned(stack: &str, tags: &[(String, String)]) -> bool {
    Ownership::from_tags(stack, tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) == Ownership::Stack
}

/// What a change needs done before it can run, or what it gets done: the apply's dependency graph is built
/// from these alone (a change waits for every change that provides a key it needs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    /// The role of this name exists.
    RoleExists(String),
    /// The managed policy of this ARN exists.
    PolicyExists(String),
    /// The instance profile of this name exists.
    InstanceProfileExists(String),
    /// A link holding the role of this name was removed (what IAM wants gone before DeleteRole).
    RoleReleased(String),
    /// A link holding the policy of this ARN was removed, or one of its versions deleted.
    PolicyReleased(String),
    /// A role was taken out of the instance profile of this name.
    InstanceProfileReleased(String),
    /// A non-default version of the policy of this ARN was deleted (IAM keeps at most five).
    PolicyVersionFreed(String),
}
