#!/usr/bin/env python3
"""What a boto3 script without a retry rule does to give an instance its new profile: one
associate_iam_instance_profile call (botocore's own retries cover throttling and 5xx only).

    ENDPOINT=http://127.0.0.1:PORT python bench/boto3_attach.py INSTANCE_ID PROFILE_NAME

Used by bench/run.py's realism run, side by side with `wfboot attach`. Exits 1 with EC2's error when it fails.
"""
import os
import sys

import boto3
from botocore.exceptions import ClientError

endpoint = os.environ.get("ENDPOINT", "")
if not endpoint.startswith("http://127.0.0.1:"):
    sys.exit(f"refusing non-local endpoint {endpoint!r}")
instance, profile = sys.argv[1], sys.argv[2]
ec2 = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y",
                            region_name="us-east-1").client("ec2", endpoint_url=endpoint)
try:
    out = ec2.associate_iam_instance_profile(InstanceId=instance, IamInstanceProfile={"Name": profile})
except ClientError as e:
    sys.exit(f"{e.response['Error']['Code']}: {e.response['Error']['Message']}")
print(out["IamInstanceProfileAssociation"]["AssociationId"])
