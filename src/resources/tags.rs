//! The stack's tags on the resources wfboot creates (`[tags]`, `--tag`), beside the ownership tag: what a create
//! sends, and what differs on a resource this stack owns (pure; each kind makes its own Tag*/Untag* calls).
//!
//! wfboot changes only the tags it set. Which ones those are is recorded on the resource itself, in the tag
//! `wfboot:tags`: the keys of the stack's tags, sorted, separated by one space (absent when the stack has no tags).
//! A key the stack no longer has is removed only when that record lists it; any other tag is never touched.

use std::collections::BTreeMap;

pub(crate) use super::access::{removing, requesting};
use super::vocab::OWNER_TAG;

/// The tag listing the keys of the stack's tags that wfboot set on the resource.
pub(crate) const KEYS_TAG: &str = "wfboot:tags";

/// The tags a resource of the stack carries besides the ownership tag: the stack's, and the record of their keys.
pub(crate) fn managed(stack_tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut all = stack_tags.clone();
    if !stack_tags.is_empty() {
        all.insert(KEYS_TAG.to_string(), stack_tags.keys().cloned().collect::<Vec<_>>().join(" "));
    }
    all
}

/// What to change on an owned resource so that it carries `stack_tags`: the tags to set (missing or with
/// another value, the record included) and the keys to remove (the stack's no more, as the record lists them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TagDiff {
    pub(crate) set: BTreeMap<String, String>,
    pub(crate) remove: Vec<String>,
}

pub(crate) fn diff(stack_tags: &BTreeMap<String, String>, observed: &[(String, String)]) -> TagDiff {
    let want = managed(stack_tags);
    let have: BTreeMap<&str, &str> = observed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let set: BTreeMap<String, String> = want
        .iter()
        .filter(|(k, v)| have.get(k.as_str()) != Some(&v.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let recorded: Vec<&str> =
        have.get(KEYS_TAG).map(|v| v.split(' ').filter(|k| !k.is_empty()).collect()).unwrap_or_default();
    let mut remove: Vec<String> = recorded
        .into_iter()
        .filter(|k| !want.contains_key(*k) && *k != OWNER_TAG && have.contains_key(k))
        .map(str::to_string)
        .collect();
    if !want.contains_key(KEYS_TAG) && have.contains_key(KEYS_TAG) {
        remove.push(KEYS_TAG.to_string());
    }
    remove.sort();
    remove.dedup();
    TagDiff { set, remove }
}

/// `tags` as the SDK's Tag values.
pub(crate) fn sdk(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_iam::types::Tag> {
    tags.iter().filter_map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().ok()).collect()
}

/// "Key=value, Key2=value2" for plans.
pub(crate) fn shown(tags: &BTreeMap<String, String>) -> String {
    tags.iter().filter(|(k, _)| *k != KEYS_TAG).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::access::Permission;
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn list(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_resource_with_the_stacks_tags_and_their_record_needs_nothing() {
        let want = map(&[("CostCenter", "42"), ("team", "imaging")]);
        let have = list(&[
            ("wfboot:stack", "s"),
            ("CostCenter", "42"),
            ("team", "imaging"),
            ("wfboot:tags", "CostCenter team"),
            ("Owner", "someone"),
        ]);
        assert_eq!(diff(&want, &have), TagDiff::default());
    }

    #[test]
    fn a_missing_or_changed_tag_is_set_again_and_others_tags_are_never_touched() {
        let want = map(&[("CostCenter", "42"), ("team", "imaging")]);
        let have = list(&[("CostCenter", "41"), ("wfboot:tags", "CostCenter team"), ("Owner", "someone")]);
        let d = diff(&want, &have);
        assert_eq!(d.set, map(&[("CostCenter", "42"), ("team", "imaging")]));
        assert!(d.remove.is_empty());
    }

    #[test]
    fn a_key_the_stack_dropped_is_removed_only_when_wfboot_recorded_it() {
        let want = map(&[("team", "imaging")]);
        let have =
            list(&[("CostCenter", "42"), ("team", "imaging"), ("Owner", "x"), ("wfboot:tags", "CostCenter team")]);
        let d = diff(&want, &have);
        assert_eq!(d.remove, ["CostCenter"]);
        assert_eq!(d.set, map(&[("wfboot:tags", "team")]));
        // No record: nothing is removed, whatever the resource has.
        let d = diff(&BTreeMap::new(), &list(&[("CostCenter", "42")]));
        assert_eq!(d, TagDiff::default());
        // The stack has no tags any more: the keys and the record go in one call.
        let d = diff(&BTreeMap::new(), &list(&[("team", "imaging"), ("wfboot:tags", "team")]));
        assert_eq!(d.remove, ["team", "wfboot:tags"]);
        assert!(d.set.is_empty());
    }

    #[test]
    fn the_request_context_names_every_tag_sent() {
        let p = requesting(Permission::new("iam:TagRole", "arn"), &map(&[("a", "1"), ("b", "2")]));
        let keys: Vec<&str> = p.context.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["aws:RequestTag/a", "aws:RequestTag/b", "aws:TagKeys"]);
    }
}
