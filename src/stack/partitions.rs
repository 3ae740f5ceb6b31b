//! The AWS partitions as the AWS SDK for Rust resolves them: ids, DNS suffixes and the region of each partition's
//! global endpoints. `data/partitions.json` is the SDK's own partitions.json, copied by `tools/gen-partitions.sh`
//! from the endpoint library of the aws-sdk-iam crate that Cargo.lock pins (a test here keeps the copy equal).

use std::sync::OnceLock;

use serde::Deserialize;

const DATA: &str = include_str!("data/partitions.json");

#[derive(Debug, Deserialize)]
struct File {
    partitions: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    id: String,
    outputs: Outputs,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Outputs {
    dns_suffix: String,
    implicit_global_region: String,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partition {
    pub(crate) id: String,
    /// `amazonaws.com`, `amazonaws.com.cn`, `c2s.ic.gov`, ...
    pub(crate) dns_suffix: String,
    /// The region the partition's global endpoints are signed for.
    pub(crate) global_region: String,
}

/// Every partition the SDK knows, in its order.
pub(crate) fn all() -> &'static [Partition] {
    static ALL: OnceLock<Vec<Partition>> = OnceLock::new();
    ALL.get_or_init(|| {
        // Embedded at build time and parsed by a test: cannot fail at run time.
        let file: File = serde_json::from_str(DATA).unwrap_or(File { partitions: Vec::new() });
        file.partitions
            .into_iter()
            .map(|e| Partition {
                id: e.id,
                dns_suffix: e.outputs.dns_suffix,
                global_region: e.outputs.implicit_global_region,
            })
            .collect()
    })
}

pub(crate) fn get(id: &str) -> Option<&'static Partition> {
    all().iter().find(|p| p.id == id)
}

pub(crate) fn ids() -> Vec<&'static str> {
    all().iter().map(|p| p.id.as_str()).collect()
}

/// The partition's DNS suffix (`amazonaws.com` for an id the SDK does not know).
pub(crate) fn dns_suffix(id: &str) -> &'static str {
    get(id).map_or("amazonaws.com", |p| p.dns_suffix.as_str())
}

/// The region IAM's requests in the partition are signed for, and the region a target in the partition is given
/// when none is said: the partition's global region, except in `aws-cn`, whose global region in the SDK's data is
/// cn-northwest-1 while IAM is reached in cn-north-1 (the IAM endpoint rules of the aws-sdk-iam crate sign China's
/// requests for cn-north-1; IAM endpoints: https://docs.aws.amazon.com/general/latest/gr/iam-service.html). A
/// partition the SDK does not know gets us-east-1.
pub(crate) fn iam_region(id: &str) -> &'static str {
    match get(id) {
        Some(p) if p.id == "aws-cn" => "cn-north-1",
        Some(p) if KNOWN_IAM_REGIONS.contains(&p.id.as_str()) => p.global_region.as_str(),
        _ => "us-east-1",
    }
}

/// The partitions whose IAM region is their global region. The others (aws-iso-e, aws-iso-f, aws-eusc) keep
/// us-east-1, as wfboot always gave them.
const KNOWN_IAM_REGIONS: &[&str] = &["aws", "aws-us-gov", "aws-iso", "aws-iso-b"];

/// `--partition`: one the SDK knows.
pub(crate) fn parse_id(s: &str) -> Result<String, String> {
    match get(s) {
        Some(p) => Ok(p.id.clone()),
        None => Err(format!("not a partition; one of {}", ids().join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partitions_are_the_sdks_with_their_dns_suffixes() {
        assert_eq!(dns_suffix("aws"), "amazonaws.com");
        assert_eq!(dns_suffix("aws-cn"), "amazonaws.com.cn");
        assert_eq!(dns_suffix("aws-us-gov"), "amazonaws.com");
        assert_eq!(dns_suffix("aws-iso"), "c2s.ic.gov");
        assert_eq!(dns_suffix("aws-iso-b"), "sc2s.sgov.gov");
        for id in ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"] {
            assert!(get(id).is_some(), "{id}: {:?}", ids());
        }
        assert_eq!(get("aws").unwrap().global_region, "us-east-1");
        assert!(parse_id("aws-moon").unwrap_err().contains("aws-iso-b"));
    }

    #[test]
    fn iam_is_signed_for_the_partitions_global_region_but_in_china() {
        let regions: Vec<&str> =
            ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-moon"].into_iter().map(iam_region).collect();
        assert_eq!(
            regions,
            ["us-east-1", "cn-north-1", "us-gov-west-1", "us-iso-east-1", "us-isob-east-1", "us-east-1"]
        );
    }

    /// data/partitions.json is the partitions.json of the aws-sdk-iam that Cargo.lock pins: run
    /// tools/gen-partitions.sh after updating the SDK.
    #[test]
    fn the_embedded_partitions_are_those_of_the_pinned_sdk() {
        let lock = include_str!("../../Cargo.lock");
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"aws-sdk-iam\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
            .map(|v| v.trim_end_matches('"').to_string())
            .expect("aws-sdk-iam in Cargo.lock");
        let home = std::env::var("CARGO_HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
        let source = std::fs::read_dir(home.join("registry/src"))
            .expect("the Cargo registry")
            .flatten()
            .map(|d| d.path().join(format!("aws-sdk-iam-{version}/src/endpoint_lib.rs")))
            .find(|p| p.exists())
            .expect("the aws-sdk-iam source in the Cargo registry");
        let text = std::fs::read_to_string(source).unwrap();
        let start = text.find("new_from_json(b\"").unwrap() + "new_from_json(b\"".len();
        let end = start + text[start..].find("\").expect").unwrap();
        let sdk: serde_json::Value =
            serde_json::from_str(&text[start..end].replace("\\\"", "\"").replace("\\\\", "\\")).unwrap();
        let mut ours: serde_json::Value = serde_json::from_str(DATA).unwrap();
        ours.as_object_mut().unwrap().remove("source");
        assert_eq!(ours, sdk, "src/stack/data/partitions.json is out of date: run tools/gen-partitions.sh");
    }
}
