//! Placeholders in trust and policy documents, filled in for the account wfboot talks to.
//!
//! Supported: `{{partition}}`, `{{account_id}}`, `{{region}}`, `{{dns_suffix}}` and `{{principal:SERVICE}}`
//! (the partition-correct service principal, e.g. `ec2.amazonaws.com.cn` in China regions). Anything else
//! between `{{` and `}}` is an error, reported with its line.

use serde::Serialize;

/// Where the documents are rendered for: from sts:GetCallerIdentity and the resolved region, never a constant.
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

    pub(crate) fn dns_suffix(&self) -> &'static str {
        match self.partition.as_str() {
            "aws-cn" => "amazonaws.com.cn",
            "aws-iso" => "c2s.ic.gov",
            "aws-iso-b" => "sc2s.sgov.gov",
            _ => "amazonaws.com",
        }
    }

    /// The service principal for `service` ("ec2", or "ec2.amazonaws.com") in this partition.
    ///
    /// Most services use `<service>.amazonaws.com` in every commercial and GovCloud partition; the exceptions
    /// are kept in one table here.
    pub(crate) fn service_principal(&self, service: &str) -> String {
        let short = service.strip_suffix(".amazonaws.com").unwrap_or(service);
        const CHINA_DOT_CN: &[&str] = &["ec2", "application-autoscaling", "elasticmapreduce"];
        match self.partition.as_str() {
            "aws-cn" if CHINA_DOT_CN.contains(&short) => format!("{short}.amazonaws.com.cn"),
            "aws-iso" | "aws-iso-b" => format!("{short}.{}", self.dns_suffix()),
            _ => format!("{short}.amazonaws.com"),
        }
    }
}

/// Render `text`, replacing every placeholder. `origin` names the file in error messages.
pub(crate) fn render(text: &str, target: &Target) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!("line {}: `{{{{` without a closing `}}}}`", line_of(text, rest, start)));
        };
        let key = after[..end].trim();
        let value = match key.split_once(':') {
            None => match key {
                "partition" => target.partition.clone(),
                "account_id" => target.account_id.clone(),
                "region" => target.region.clone(),
                "dns_suffix" => target.dns_suffix().to_string(),
                _ => return Err(unknown(key, text, rest, start)),
            },
            Some(("principal", service)) if is_service_name(service.trim()) => target.service_principal(service.trim()),
            Some(_) => return Err(unknown(key, text, rest, start)),
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
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
    fn unknown_placeholder_names_its_line() {
        let err = render("{\n  \"a\": \"{{acount_id}}\"\n}", &target("aws")).unwrap_err();
        assert!(err.starts_with("line 2: unknown placeholder `{{acount_id}}`"), "{err}");
        let err = render("x {{principal:EC2!}}", &target("aws")).unwrap_err();
        assert!(err.contains("unknown placeholder"), "{err}");
    }

    #[test]
    fn unterminated_placeholder_is_an_error() {
        assert!(render("a\nb {{partition", &target("aws")).unwrap_err().starts_with("line 2:"));
    }
}
