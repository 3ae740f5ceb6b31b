//! The stacks and templates shipped inside the binary, so `wfboot` works without the repository.
//!
//! A unit test checks that every file in `profiles/` and `service_roles/` is listed here.

macro_rules! embed {
    ($dir:literal, $($name:literal),+ $(,)?) => {
        &[$(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $dir, "/", $name)))),+]
    };
}

/// `(file name, TOML)`; the default stack comes first.
pub(crate) const PROFILES: &[(&str, &str)] = embed!("profiles", "slim-workflow.toml", "render-worker.toml");

pub(crate) const TEMPLATES: &[(&str, &str)] = embed!(
    "service_roles",
    "create_AWSBatchServiceRole.json",
    "create_StepFunctionsLambdaRole.json",
    "create_SLIM-Extras_ECS_for_EC2.json",
    "create_SLIM-Extras_for_Lambda.json",
    "create_AmazonEC2SpotFleetRole.json",
    "create_LambdaBatchExecutionPolicy.json",
    "create_SLIMWorkflowPassRoles.json",
    "ec2-trust-policy.json",
    "render_job_worker_policy.json",
);

pub(crate) const DEFAULT_STACK: &str = "slim-workflow";

pub(crate) fn template(name: &str) -> Option<&'static str> {
    TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

pub(crate) fn profile(stack_name: &str) -> Option<&'static str> {
    PROFILES.iter().find(|(n, _)| n.strip_suffix(".toml") == Some(stack_name)).map(|(_, text)| *text)
}

pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    PROFILES.iter().filter_map(|(n, _)| n.strip_suffix(".toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut names: Vec<String> =
            std::fs::read_dir(path).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn every_profile_and_template_in_the_repository_is_embedded() {
        let mut embedded: Vec<String> = PROFILES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, files_in("profiles"));
        let mut embedded: Vec<String> = TEMPLATES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, files_in("service_roles"));
    }
}
