"""Deploy a CloudFormation template to the emulator (moto's CloudFormation), as a StackSet would deploy one stack
instance: `cfn_deploy.py URL REGION STACK_NAME TEMPLATE [KEY=VALUE ...]` (parameter overrides). Prints one JSON line:
{"status": ..., "error": ...}. Test tooling only (tests/it/export.rs); credentials come from the environment."""

import json
import sys

import boto3


def main() -> None:
    url, region, name, template, *params = sys.argv[1:]
    cf = boto3.client("cloudformation", endpoint_url=url, region_name=region)
    overrides = [{"ParameterKey": k, "ParameterValue": v} for k, v in (p.split("=", 1) for p in params)]
    try:
        cf.create_stack(
            StackName=name,
            TemplateBody=open(template).read(),
            Parameters=overrides,
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
        status = cf.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        print(json.dumps({"status": status, "error": None}))
    except cf.exceptions.ClientError as e:
        print(json.dumps({"status": None, "error": e.response["Error"].get("Code"), "message": str(e)}))


if __name__ == "__main__":
    main()
