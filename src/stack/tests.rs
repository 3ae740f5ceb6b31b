//! Loading: the built-in stacks are valid, and every kind of bad input is rejected with a message that names
//! the problem.

use super::*;

#[test]
fn built_in_stacks_load_and_render_for_every_partition() {
    for name in builtin::names() {
        let stack = Stack::resolve(Some(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        for partition in ["aws", "aws-cn", "aws-us-gov"] {
            let target =
                Target { partition: partition.into(), account_id: "111122223333".into(), region: "us-east-1".into() };
            let desired = stack.render(&target).unwrap_or_else(|e| panic!("{name} in {partition}: {e}"));
            let text = serde_json::to_string(&desired).unwrap();
            assert!(!text.contains("{{"), "unrendered placeholder in {name}");
            assert!(desired
                .roles
                .iter()
                .flat_map(|r| &r.policy_arns)
                .all(|a| a.starts_with(&format!("arn:{partition}:"))));
        }
    }
}

#[test]
fn the_default_stack_is_the_corrected_tutorial() {
    let stack = Stack::resolve(None).unwrap();
    assert_eq!(stack.name, "slim-workflow");
    let t = Target { partition: "aws".into(), account_id: "111122223333".into(), region: "us-east-1".into() };
    let d = stack.render(&t).unwrap();
    let lambda = d.roles.iter().find(|r| r.name == "SLIM-Extras_for_Lambda").unwrap();
    assert!(lambda.policy_arns.contains(&"arn:aws:iam::aws:policy/AWSLambda_FullAccess".to_string()));
    assert!(lambda.policy_arns.contains(&"arn:aws:iam::111122223333:policy/LambdaBatchExecutionPolicy".to_string()));
    let spot = d.roles.iter().find(|r| r.name == "AmazonEC2SpotFleetRole").unwrap();
    assert_eq!(spot.policy_arns, vec!["arn:aws:iam::aws:policy/service-role/AmazonEC2SpotFleetTaggingRole"]);
    assert_eq!(d.service_linked_roles, vec!["spot.amazonaws.com", "spotfleet.amazonaws.com", "batch.amazonaws.com"]);
    // 7 AWS managed policies and the stack's own PassRole policy.
    assert_eq!(d.user_policies.len(), 8);
    assert!(d.user_policies.contains(&"arn:aws:iam::111122223333:policy/SLIMWorkflowPassRoles".to_string()));
    // China: EC2's principal differs.
    let cn = Target { partition: "aws-cn".into(), ..t };
    let d = stack.render(&cn).unwrap();
    let ec2 = d.roles.iter().find(|r| r.name == "SLIM-Extras_ECS_for_EC2").unwrap();
    assert_eq!(ec2.trust["Statement"][0]["Principal"]["Service"], "ec2.amazonaws.com.cn");
}

/// The operator's PassRole policy grants iam:PassRole on exactly the stack's roles, each only to the services its
/// trust document names: a role or a trust added to the stack without updating the template fails here.
#[test]
fn the_default_operators_pass_role_policy_passes_exactly_each_role_to_the_services_that_trust_it() {
    for partition in ["aws", "aws-cn", "aws-us-gov"] {
        let t = Target { partition: partition.into(), account_id: "111122223333".into(), region: "us-east-1".into() };
        let d = Stack::resolve(None).unwrap().render(&t).unwrap();
        let policy = d.policies.iter().find(|p| p.name == "SLIMWorkflowPassRoles").unwrap();
        let mut granted: Vec<(String, String)> = Vec::new();
        for s in policy.document["Statement"].as_array().unwrap() {
            assert_eq!(s["Effect"], "Allow");
            assert_eq!(s["Action"], "iam:PassRole");
            let service = s["Condition"]["StringEquals"]["iam:PassedToService"].as_str().unwrap().to_string();
            granted.push((s["Resource"].as_str().unwrap().to_string(), service));
        }
        let mut wanted: Vec<(String, String)> = Vec::new();
        for r in &d.roles {
            for service in crate::resources::access::trusted_services(&r.trust) {
                wanted.push((format!("arn:{partition}:iam::111122223333:role{}{}", r.path, r.name), service));
            }
        }
        granted.sort();
        wanted.sort();
        assert_eq!(granted, wanted, "{partition}");
    }
}

#[test]
fn a_user_customer_policy_must_be_one_of_the_stacks_policies() {
    let err = load("name = \"s\"\n[user]\ncustomer_policies = [\"Nope\"]\n", &[]).unwrap_err();
    assert!(err.to_string().contains("[user]: customer policy `Nope` is not defined in this stack"), "{err}");
}

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"{{principal:ec2}}"},"Action":"sts:AssumeRole"}]}"#;

/// Writes a stack and its templates into a temporary directory laid out like the repository.
fn load(stack_toml: &str, templates: &[(&str, &str)]) -> Result<Stack> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    std::fs::create_dir(dir.path().join("service_roles")).unwrap();
    std::fs::write(dir.path().join("service_roles/trust.json"), TRUST).unwrap();
    for (name, text) in templates {
        std::fs::write(dir.path().join("service_roles").join(name), text).unwrap();
    }
    let path = dir.path().join("profiles/s.toml");
    std::fs::write(&path, stack_toml).unwrap();
    Stack::load_file(&path)
}

fn role(extra: &str) -> String {
    format!("name = \"s\"\n[[role]]\nname = \"R\"\ntrust = \"trust.json\"\n{extra}\n")
}

#[test]
fn bad_stacks_are_rejected_with_a_message_naming_the_problem() {
    let long = "x".repeat(65);
    let long_policy = "p".repeat(129);
    let big_statement = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"{{{{principal:ec2}}}}"}},"Action":"sts:AssumeRole","Sid":"{}"}}]}}"#,
        "S".repeat(2100)
    );
    let big_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:*","Resource":"{}"}}]}}"#,
        "r".repeat(6200)
    );
    /// What is wrong, the stack file, extra files beside it, and a part of the error.
    type Case<'a> = (&'a str, String, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        ("malformed TOML", "name = \"s\"\n[[role]\n".into(), vec![], "invalid stack file"),
        ("unknown top-level key", "name = \"s\"\nroles = []\n".into(), vec![], "unknown field `roles`"),
        ("unknown role key", role("trsut = \"x\""), vec![], "unknown field `trsut`"),
        ("missing name", "[[role]]\nname = \"R\"\ntrust = \"trust.json\"\n".into(), vec![], "missing field `name`"),
        ("missing trust", "name = \"s\"\n[[role]]\nname = \"R\"\n".into(), vec![], "missing field `trust`"),
        ("wrong type", "name = \"s\"\n[[role]]\nname = \"R\"\ntrust = \"trust.json\"\nmanaged_policies = \"A\"\n".into(), vec![], "invalid type"),
        ("role name too long", format!("name = \"s\"\n[[role]]\nname = \"{long}\"\ntrust = \"trust.json\"\n"), vec![], "IAM allows at most 64"),
        ("role name with a space", "name = \"s\"\n[[role]]\nname = \"My Role\"\ntrust = \"trust.json\"\n".into(), vec![], "may contain only"),
        ("role name with a slash", "name = \"s\"\n[[role]]\nname = \"a/b\"\ntrust = \"trust.json\"\n".into(), vec![], "may contain only"),
        ("empty role name", "name = \"s\"\n[[role]]\nname = \"\"\ntrust = \"trust.json\"\n".into(), vec![], "the name is empty"),
        ("policy name too long", format!("name = \"s\"\n[[policy]]\nname = \"{long_policy}\"\ndocument = \"p.json\"\n"), vec![("p.json", r#"{"Statement":[]}"#.into())], "at most 128"),
        ("profile name with a colon", "name = \"s\"\n[[role]]\nname = \"R\"\ntrust = \"trust.json\"\n[[instance_profile]]\nname = \"a:b\"\nrole = \"R\"\n".into(), vec![], "may contain only"),
        ("duplicate role", format!("{}[[role]]\nname = \"r\"\ntrust = \"trust.json\"\n", role("")), vec![], "listed twice"),
        ("duplicate policy", "name = \"s\"\n[[policy]]\nname = \"P\"\ndocument = \"p.json\"\n[[policy]]\nname = \"P\"\ndocument = \"p.json\"\n".into(), vec![("p.json", r#"{"Statement":[]}"#.into())], "listed twice"),
        ("duplicate profile", "name = \"s\"\n[[role]]\nname = \"R\"\ntrust = \"trust.json\"\n[[instance_profile]]\nname = \"I\"\nrole = \"R\"\n[[instance_profile]]\nname = \"I\"\nrole = \"R\"\n".into(), vec![], "listed twice"),
        ("duplicate managed policy on a role", role("managed_policies = [\"AmazonS3FullAccess\", \"AmazonS3FullAccess\"]"), vec![], "listed twice"),
        ("duplicate user policy", "name = \"s\"\n[user]\nmanaged_policies = [\"A\", \"A\"]\n".into(), vec![], "listed twice"),
        ("duplicate service-linked role", "name = \"s\"\n[[service_linked_role]]\nservice = \"spot.amazonaws.com\"\n[[service_linked_role]]\nservice = \"spot.amazonaws.com\"\n".into(), vec![], "listed twice"),
        ("dangling customer policy", role("customer_policies = [\"Nope\"]"), vec![], "customer policy `Nope` is not defined"),
        ("dangling profile role", "name = \"s\"\n[[instance_profile]]\nname = \"I\"\nrole = \"Ghost\"\n".into(), vec![], "role `Ghost` is not defined"),
        ("path without slashes", role("path = \"workflow\""), vec![], "must start and end with `/`"),
        ("path without trailing slash", role("path = \"/workflow\""), vec![], "must start and end with `/`"),
        ("path with a double slash", role("path = \"/a//b/\""), vec![], "must start and end with `/`"),
        ("missing template", "name = \"s\"\n[[role]]\nname = \"R\"\ntrust = \"nope.json\"\n".into(), vec![], "template `nope.json` not found"),
        ("template outside the directory", "name = \"s\"\n[[role]]\nname = \"R\"\ntrust = \"../../etc/passwd\"\n".into(), vec![], "must be a file name inside"),
        ("invalid JSON template", "name = \"s\"\n[[role]]\nname = \"R\"\ntrust = \"bad.json\"\n".into(), vec![("bad.json", "{\"Statement\": [}".into())], "not valid JSON"),
        ("unknown placeholder", "name = \"s\"\n[[role]]\nname = \"R\"\ntrust = \"bad.json\"\n".into(), vec![("bad.json", "{\"Statement\": [],\n \"x\": \"{{acount}}\"}".into())], "line 2: unknown placeholder `{{acount}}`"),
        ("unterminated placeholder", "name = \"s\"\n[[role]]\nname = \"R\"\ntrust = \"bad.json\"\n".into(), vec![("bad.json", "{\"Statement\": [], \"x\": \"{{region\"}".into())], "without a closing"),
        ("trust document over 2048 characters", "name = \"s\"\n[[role]]\nname = \"R\"\ntrust = \"big.json\"\n".into(), vec![("big.json", big_statement)], "over IAM's default limit of 2048"),
        ("policy document over 6144 characters", "name = \"s\"\n[[policy]]\nname = \"P\"\ndocument = \"big.json\"\n".into(), vec![("big.json", big_policy)], "over IAM's limit of 6144"),
        ("deprecated managed policy", role("managed_policies = [\"AWSLambdaFullAccess\"]"), vec![], "use `AWSLambda_FullAccess` instead"),
        ("deprecated spot fleet policy", role("managed_policies = [\"service-role/AmazonEC2SpotFleetRole\"]"), vec![], "AmazonEC2SpotFleetTaggingRole"),
        ("malformed managed policy ARN", role("managed_policies = [\"arn:aws:iam:policy/X\"]"), vec![], "not a valid"),
        ("ARN of a role, not a policy", role("managed_policies = [\"arn:aws:iam::aws:role/X\"]"), vec![], "not a policy ARN"),
        ("ARN in an unknown partition", role("managed_policies = [\"arn:aws-mars:iam::aws:policy/X\"]"), vec![], "not a valid IAM policy ARN"),
        ("managed policy name with spaces", role("managed_policies = [\"Amazon S3\"]"), vec![], "neither an AWS managed policy name nor an ARN"),
        ("too many policies on a role", role(&format!("managed_policies = [{}]", (0..21).map(|i| format!("\"P{i}\"")).collect::<Vec<_>>().join(","))), vec![], "over IAM's maximum of 20"),
        ("service-linked role that is not a service", "name = \"s\"\n[[service_linked_role]]\nservice = \"spot\"\n".into(), vec![], "must be an AWS service principal"),
        ("stack name with a space", "name = \"my stack\"\n".into(), vec![], "stack name `my stack`"),
        ("description over 1000 characters", role(&format!("description = \"{}\"", "d".repeat(1001))), vec![], "longer than 1000"),
    ];
    assert!(cases.len() >= 40);
    for (what, toml, templates, expected) in cases {
        let templates: Vec<(&str, &str)> = templates.iter().map(|(n, t)| (*n, t.as_str())).collect();
        match load(&toml, &templates) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => {
                let shown = e.to_string();
                assert_eq!(e.kind, crate::error::ErrorKind::Input, "{what}: {shown}");
                assert!(shown.contains(expected), "{what}: expected {expected:?} in:\n{shown}");
                assert!(
                    shown.contains("s.toml") || shown.contains(".json"),
                    "{what}: the message names no file:\n{shown}"
                );
            }
        }
    }
}

#[test]
fn a_managed_policy_arn_in_another_partition_is_rejected_at_render() {
    let stack = load(&role("managed_policies = [\"arn:aws:iam::aws:policy/AmazonS3FullAccess\"]"), &[]).unwrap();
    let cn = Target { partition: "aws-cn".into(), account_id: "111122223333".into(), region: "cn-north-1".into() };
    let err = stack.render(&cn).unwrap_err().to_string();
    assert!(err.contains("is in partition `aws`, but the account is in `aws-cn`"), "{err}");
}

#[test]
fn stacks_are_found_by_name_or_path_and_unknown_ones_are_explained() {
    assert!(Stack::resolve(Some("render-worker")).is_ok());
    let err = Stack::resolve(Some("slim-workflw")).unwrap_err();
    assert!(err.to_string().contains("unknown stack `slim-workflw`"));
    assert!(err.help.unwrap().contains("slim-workflow"));
    let err = Stack::resolve(Some("./missing.toml")).unwrap_err();
    assert!(err.to_string().contains("does not exist"));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/render-worker.toml");
    assert_eq!(Stack::resolve(Some(path)).unwrap().name, "render-worker");
}

#[test]
fn a_file_stack_can_use_built_in_templates() {
    let stack = load("name = \"mine\"\n[[role]]\nname = \"Batch\"\ntrust = \"create_AWSBatchServiceRole.json\"\n", &[])
        .unwrap();
    assert_eq!(stack.roles[0].trust.name, "service_roles/create_AWSBatchServiceRole.json");
}

#[test]
fn a_stack_file_and_a_template_saved_with_a_utf8_byte_order_mark_load_as_without_it() {
    let policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#;
    let stack_toml = "\u{feff}name = \"s\"\n[[policy]]\nname = \"P\"\ndocument = \"p.json\"\n[[role]]\nname = \"R\"\n\
                      trust = \"trust.json\"\ncustomer_policies = [\"P\"]\n";
    let stack = load(stack_toml, &[("p.json", &format!("\u{feff}{policy}"))]).unwrap();
    assert_eq!(stack.name, "s");
    assert_eq!(stack.roles[0].name, "R");
}

#[test]
fn allowed_accounts_and_expect_account_each_refuse_an_account_they_do_not_name() {
    let toml = "name = \"s\"\nallowed_accounts = [\"111111111111\", \"222222222222\"]\n[[role]]\nname = \"R\"\ntrust = \"trust.json\"\n";
    let stack = load(toml, &[]).unwrap();
    assert_eq!(stack.account_refusal(&[], "111111111111"), None);
    assert_eq!(
        stack.account_refusal(&[], "333333333333").as_deref(),
        Some("account 333333333333 is not allowed by the stack's allowed_accounts (111111111111, 222222222222)")
    );
    let expected = ["222222222222".to_string()];
    assert_eq!(stack.account_refusal(&expected, "222222222222"), None, "both allow it");
    assert_eq!(
        stack.account_refusal(&expected, "111111111111").as_deref(),
        Some("account 111111111111 is not allowed by --expect-account (222222222222)")
    );
    let err = stack.check_account(&expected, "333333333333").unwrap_err();
    assert_eq!(err.kind.exit_code(), 64);
    assert!(err.message.contains("allowed_accounts (111111111111, 222222222222) nor by --expect-account"), "{err}");
    let open = load(&role(""), &[]).unwrap();
    assert_eq!(open.account_refusal(&[], "333333333333"), None, "nothing set: any account");

    let err = load("name = \"s\"\nallowed_accounts = [\"12345\"]\n", &[]).unwrap_err();
    assert!(err.to_string().contains("allowed_accounts: `12345` is not an account id (12 digits)"), "{err}");
}
