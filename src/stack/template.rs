//! Placeholders in trust and policy documents, filled in for the account wfboot talks to.
//!
//! Supported: `{{partition}}`, `{{account_id}}`, `{{region}}`, `{{dns_suffix}}` and `{{principal:SERVICE}}`
//! (the partition-correct service principal, e.g. `ec2.amazonaws.com.cn` in China regions). Anything else
//! between `{{` and `}}` is an error, reported with its line.

use serde::Serialize;

/// Where the documents are rendered for: from sts:GetCallerIdentity and the resolved region, never a constant.
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, schemars(deny_unknown_fields))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Target {
    pub(crate) partition: String,
    pub(crate) account_id: String,
    pub(crate) region: String,
}

impl Target {
    /// The longest values a real account can have: used to check document size quotas before knowing the account.
    pub(crate) fn worst_case() -> Target {
        Target { partition: "aws-iso-b".into(), account_id: "123456789012".into(), region: "ap-southeast-5".into() }
    }

    /// The partition's DNS suffix, from the SDK's partition data ([`super::partitions`]).
    pub(crate) fn dns_suffix(&self) -> &'static str {
        super::partitions::dns_suffix(&self.partition)
    }

    /// The service principal for `service` ("ec2", or "ec2.amazonaws.com") in this partition.
    ///
    /// Service principals are `<service>.amazonaws.com` in every partition, the isolated ones included, except
    /// the few kept here: in China, those of [`dot_cn_in_china`]; in aws-iso, cloudhsm, config and workspaces,
    /// and in aws-iso-b, dms, which use the partition's DNS suffix. The table is aws-cdk's
    /// (packages/aws-cdk-lib/region-info/lib/default.ts, `US_ISO_EXCEPTIONS` and `US_ISOB_EXCEPTIONS`; `states`,
    /// in those lists, keeps `.amazonaws.com`).
    pub(crate) fn service_principal(&self, service: &str) -> String {
        let short = service.strip_suffix(".amazonaws.com").unwrap_or(service);
        match self.partition.as_str() {
            "aws-cn" if dot_cn_in_china(short) => format!("{short}.amazonaws.com.cn"),
            "aws-iso" if ["cloudhsm", "config", "workspaces"].contains(&short) => {
                format!("{short}.{}", self.dns_suffix())
            }
            "aws-iso-b" if short == "dms" => format!("{short}.{}", self.dns_suffix()),
            _ => format!("{short}.amazonaws.com"),
        }
    }
}

/// Services whose principal in aws-cn ends in `.amazonaws.com.cn` (`ec2.amazonaws.com.cn`); every other service
/// keeps `<service>.amazonaws.com` there. `service` is the short name ("ec2") or the principal ("ec2.amazonaws.com").
pub(crate) fn dot_cn_in_china(service: &str) -> bool {
    const CHINA_DOT_CN: &[&str] = &["ec2", "application-autoscaling", "elasticmapreduce"];
    CHINA_DOT_CN.contains(&service.strip_suffix(".amazonaws.com").unwrap_or(service))
}

/// A placeholder as written in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholder<'a> {
    Partition,
    AccountId,
    Region,
    DnsSuffix,
    /// `{{principal:SERVICE}}`, with SERVICE as written: "ec2" or "ec2.amazonaws.com".
    Principal(&'a str),
}

/// A piece of a template: text to copy as is, or a placeholder to fill in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    Literal(&'a str),
    Placeholder(Placeholder<'a>),
}

/// Split `text` into literal text and placeholders; an unknown or unterminated placeholder is an error naming its line.
pub(crate) fn segments(text: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Segment::Literal(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!("line {}: `{{{{` without a closing `}}}}`", line_of(text, rest, start)));
        };
        let key = after[..end].trim();
        let placeholder = match key.split_once(':') {
            None => match key {
                "partition" => Placeholder::Partition,
                "account_id" => Placeholder::AccountId,
                "region" => Placeholder::Region,
                "dns_suffix" => Placeholder::DnsSuffix,
                _ => return Err(unknown(key, text, rest, start)),
            },
            Some(("principal", service)) if is_service_name(service.trim()) => Placeholder::Principal(service.trim()),
            Some(_) => return Err(unknown(key, text, rest, start)),
        };
        out.push(Segment::Placeholder(placeholder));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Segment::Literal(rest));
    }
    Ok(out)
}

/// Render `text`, filling in every placeholder with what `resolve` returns for it.
pub(crate) fn render_with(text: &str, resolve: impl Fn(Placeholder<'_>) -> String) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + 64);
    for segment in segments(text)? {
        match segment {
            Segment::Literal(s) => out.push_str(s),
            Segment::Placeholder(p) => out.push_str(&resolve(p)),
        }
    }
    Ok(out)
}

/// Render `text` for `target`, replacing every placeholder.
pub(crate) fn render(text: &str, target: &Target) -> Result<String, String> {
    render_with(text, |p| match p {
        Placeholder::Partition => target.partition.clone(),
        Placeholder::AccountId => target.account_id.clone(),
        Placeholder::Region => target.region.clone(),
        Placeholder::DnsSuffix => target.dns_suffix().to_string(),
        Placeholder::Principal(service) => target.service_principal(service),
    })
}

fn is_service_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

fn unknown(key: &str, text: &str, rest: &str, start: usize) -> String {
    format!(
        "line {}: unknown placeholder `{{{{{key}}}}}`; known: {{{{partition}}}}, {{{{account_id}}}}, {{{{region}}}}, \
         {{{{dns_suffix}}}}, {{{{principal:SERVICE}}}}",
        line_of(text, rest, start)
    )
}

/// 1-based line number of `rest[start]` inside `text` (`rest` is a suffix of `text`).
fn line_of(text: &str, rest: &str, start: usize) -> usize {
    let offset = text.len() - rest.len() + start;
    text[..offset].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(partition: &str) -> Target {
        Target { partition: partition.into(), account_id: "111122223333".into(), region: "cn-north-1".into() }
    }

    #[test]
    fn fills_in_account_partition_and_region() {
        let out = render("arn:{{partition}}:iam::{{ account_id }}:role/x in {{region}}", &target("aws")).unwrap();
        assert_eq!(out, "arn:aws:iam::111122223333:role/x in cn-north-1");
    }

    #[test]
    fn ec2_principal_is_dot_cn_in_china_and_lambda_is_not() {
        let t = target("aws-cn");
        assert_eq!(render("{{principal:ec2}}", &t).unwrap(), "ec2.amazonaws.com.cn");
        assert_eq!(render("{{principal:lambda}}", &t).unwrap(), "lambda.amazonaws.com");
        assert_eq!(render("{{principal:ec2}}", &target("aws")).unwrap(), "ec2.amazonaws.com");
        assert_eq!(render("{{principal:ec2.amazonaws.com}}", &target("aws-us-gov")).unwrap(), "ec2.amazonaws.com");
    }

    #[test]
    fn isolated_partitions_use_amazonaws_com_except_the_documented_few() {
        let iso = target("aws-iso");
        assert_eq!(render("{{principal:ec2}}", &iso).unwrap(), "ec2.amazonaws.com");
        assert_eq!(render("{{principal:states}}", &iso).unwrap(), "states.amazonaws.com");
        assert_eq!(render("{{principal:config}}", &iso).unwrap(), "config.c2s.ic.gov");
        let isob = target("aws-iso-b");
        assert_eq!(render("{{principal:batch}}", &isob).unwrap(), "batch.amazonaws.com");
        assert_eq!(render("{{principal:dms}}", &isob).unwrap(), "dms.sc2s.sgov.gov");
        assert_eq!(render("{{dns_suffix}}", &isob).unwrap(), "sc2s.sgov.gov");
    }

    #[test]
    fn unknown_placeholder_names_its_line() {
        let err = render("{\n  \"a\": \"{{acount_id}}\"\n}", &target("aws")).unwrap_err();
        assert!(err.starts_with("line 2: unknown placeholder `{{acount_id}}`"), "{err}");
        let err = render("x {{principal:EC2!}}", &target("aws")).unwrap_err();
        assert!(err.contains("unknown placeholder"), "{err}");
    }

    #[test]
    fn render_with_sees_each_placeholder_and_keeps_the_text_around_it() {
        let out = render_with("a{{partition}}b{{ principal:ec2 }}c${x}", |p| format!("<{p:?}>")).unwrap();
        assert_eq!(out, "a<Partition>b<Principal(\"ec2\")>c${x}");
        assert_eq!(
            segments("{{region}}-{{dns_suffix}}").unwrap(),
            vec![
                Segment::Placeholder(Placeholder::Region),
                Segment::Literal("-"),
                Segment::Placeholder(Placeholder::DnsSuffix)
            ]
        );
        assert!(dot_cn_in_china("ec2.amazonaws.com") && dot_cn_in_china("ec2") && !dot_cn_in_china("lambda"));
    }

    #[test]
    fn unterminated_placeholder_is_an_error() {
        assert!(render("a\nb {{partition", &target("aws")).unwrap_err().starts_with("line 2:"));
    }
}
