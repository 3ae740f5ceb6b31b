//! `wfboot whoami`: which credentials wfboot would use, where they come from, and whose they are. On an EC2
//! instance this answers "did my role reach the instance?". Never prints a secret.

use std::time::SystemTime;

use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::ProvideCredentials;
use serde::Serialize;

use crate::aws::{AwsSettings, Clients};
use crate::commands::ExitStatus;
use crate::error::{Error, Result};
use crate::output::Printer;
use crate::resources::caller;

#[derive(Debug, Serialize)]
struct WhoAmI {
    /// Where the credentials come from, e.g. "environment variables" or "instance metadata service (IMDS)".
    source: String,
    profile: Option<String>,
    /// The access key id with its middle hidden.
    access_key_id: String,
    temporary: bool,
    /// RFC 3339, for temporary credentials.
    expires: Option<String>,
    expires_in_minutes: Option<i64>,
    principal_arn: String,
    account_id: String,
    region: String,
}

pub(crate) async fn run(printer: &Printer, aws: &AwsSettings) -> Result<ExitStatus> {
    let clients = Clients::connect(aws).await?;
    let provider = clients.sdk.credentials_provider().ok_or_else(no_credentials)?;
    let creds = provider.provide_credentials().await.map_err(|e| {
        let mut err = no_credentials();
        err.message = format!(
            "no AWS credentials could be loaded: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        );
        err
    })?;
    let features = creds.get_property::<Vec<AwsCredentialFeature>>().cloned().unwrap_or_default();
    let named = aws.profile.clone().or_else(|| std::env::var("AWS_PROFILE").ok()).filter(|p| !p.is_empty());
    // The profile is named only when the credentials came from it: with AWS_PROFILE set, keys in the environment
    // still win, and saying "profile X" then would point at the wrong credentials.
    let profile = named.filter(|_| from_profile(&features));
    let source = source(&features, profile.as_deref());
    let caller = caller::identify(&clients).await?;
    let expires = creds.expiry();
    let report = WhoAmI {
        source,
        profile,
        access_key_id: mask(creds.access_key_id()),
        temporary: creds.session_token().is_some(),
        expires: expires.map(|t| {
            aws_smithy_types::DateTime::from(t).fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_default()
        }),
        expires_in_minutes: expires.map(|t| match t.duration_since(SystemTime::now()) {
            Ok(d) => (d.as_secs() / 60) as i64,
            Err(e) => -((e.duration().as_secs() / 60) as i64),
        }),
        principal_arn: caller.arn,
        account_id: caller.account_id,
        region: clients.region.clone(),
    };
    if printer.json() {
        printer.result_document("whoami", &report);
    } else {
        let mut out = format!(
            "principal   {}\naccount     {}\nregion      {}\ncredentials {}",
            report.principal_arn, report.account_id, report.region, report.source
        );
        out += &format!("\naccess key  {}", report.access_key_id);
        match (&report.expires, report.expires_in_minutes) {
            (Some(at), Some(min)) => {
                out += &format!("\nexpires     {at} (in {min} min; temporary credentials, refreshed automatically)")
            }
            _ if report.temporary => out += "\nexpires     (temporary credentials without an expiry)",
            _ => out += "\nexpires     never (long-term access key: prefer a role or SSO)",
        }
        printer.result(&out);
    }
    Ok(ExitStatus::Success)
}

fn no_credentials() -> Error {
    Error::aws("no AWS credentials were found").with_help(crate::aws::errors::NO_CREDENTIALS_HELP)
}

/// The credentials were resolved from a profile of the shared files (keys, SSO, credential_process, assume role).
fn from_profile(features: &[AwsCredentialFeature]) -> bool {
    features.iter().any(|f| {
        matches!(
            f,
            AwsCredentialFeature::CredentialsProfile
                | AwsCredentialFeature::CredentialsProfileSso
                | AwsCredentialFeature::CredentialsProfileProcess
                | AwsCredentialFeature::CredentialsProfileStsWebIdToken
                | AwsCredentialFeature::CredentialsSso
                | AwsCredentialFeature::CredentialsProcess
                | AwsCredentialFeature::CredentialsStsAssumeRole
        )
    }) && !features.contains(&AwsCredentialFeature::CredentialsEnvVars)
}

/// The credential source, from the features the SDK's providers record on the credentials they resolve.
fn source(features: &[AwsCredentialFeature], profile: Option<&str>) -> String {
    let has = |f: AwsCredentialFeature| features.contains(&f);
    let in_profile = profile.map(|p| format!(" in profile {p}")).unwrap_or_default();
    if has(AwsCredentialFeature::CredentialsImds) {
        "instance metadata service (IMDS): the instance's role".into()
    } else if has(AwsCredentialFeature::CredentialsHttp) {
        "container credentials endpoint (ECS task role / EKS pod identity)".into()
    } else if has(AwsCredentialFeature::CredentialsSso) || has(AwsCredentialFeature::CredentialsProfileSso) {
        format!("IAM Identity Center (SSO){in_profile}")
    } else if has(AwsCredentialFeature::CredentialsProcess) || has(AwsCredentialFeature::CredentialsProfileProcess) {
        format!("credential_process{in_profile}")
    } else if has(AwsCredentialFeature::CredentialsProfileStsWebIdToken)
        || has(AwsCredentialFeature::CredentialsEnvVarsStsWebIdToken)
        || has(AwsCredentialFeature::CredentialsStsAssumeRoleWebId)
    {
        "web identity token (sts:AssumeRoleWithWebIdentity)".into()
    } else if has(AwsCredentialFeature::CredentialsStsAssumeRole) {
        format!("assumed role (sts:AssumeRole){in_profile}")
    } else if has(AwsCredentialFeature::CredentialsEnvVars) {
        "environment variables (AWS_ACCESS_KEY_ID)".into()
    } else if has(AwsCredentialFeature::CredentialsProfile) {
        format!("shared credentials file{in_profile}")
    } else {
        "the default credential chain (source not reported)".into()
    }
}

/// `AKIA…WXYZ`: enough to tell keys apart, not enough to use one.
fn mask(key: &str) -> String {
    if key.len() <= 8 {
        return "****".into();
    }
    format!("{}…{}", &key[..4], &key[key.len() - 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_named_from_the_sdk_features_and_keys_are_masked() {
        assert!(source(&[AwsCredentialFeature::CredentialsImds], None).contains("IMDS"));
        assert!(source(&[AwsCredentialFeature::CredentialsEnvVars], None).contains("environment"));
        assert_eq!(
            source(&[AwsCredentialFeature::CredentialsProfile], Some("dev")),
            "shared credentials file in profile dev"
        );
        assert!(source(&[AwsCredentialFeature::CredentialsSso, AwsCredentialFeature::CredentialsProfile], Some("x"))
            .contains("SSO"));
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
        assert_eq!(mask("short"), "****");
    }
}
