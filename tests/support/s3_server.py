"""A real S3-compatible server for tests: moto's server on 127.0.0.1, a free
port, with one bucket and a user allowed to use it; signatures are checked.
Prints `key ID SECRET` and `port N`, then answers commands on stdin:

    list            -> one JSON object {key: [size, first two bytes as hex]}
    stop            -> stops serving (the port is closed), prints `stopped`

Exits when stdin closes.

With `--role` as the second argument, the user may only assume a role
(`s3-writer`, allowed s3:*): its key alone cannot use S3. The role's ARN is
printed as a third line, `role ARN`.
"""

import json
import os
import sys

ROLE = "--role" in sys.argv[2:]
# Signatures and access keys are checked after the first requests (the
# ones that make the user, its key, its policy, the role and the bucket).
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "6" if ROLE else "4"

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
)


ASSUME = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
    }
)
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)


def main() -> None:
    bucket = sys.argv[1] if len(sys.argv) > 1 else "recordings"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boot = dict(
        endpoint_url=endpoint,
        aws_access_key_id="boot",
        aws_secret_access_key="boot",
        region_name="us-east-1",
    )
    iam = boto3.client("iam", **boot)
    iam.create_user(UserName="gatehouse")
    key = iam.create_access_key(UserName="gatehouse")["AccessKey"]
    role_arn = None
    if ROLE:
        iam.put_user_policy(UserName="gatehouse", PolicyName="assume", PolicyDocument=ASSUME)
        role_arn = iam.create_role(RoleName="s3-writer", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        iam.put_role_policy(RoleName="s3-writer", PolicyName="s3", PolicyDocument=POLICY)
    else:
        iam.put_user_policy(UserName="gatehouse", PolicyName="s3", PolicyDocument=POLICY)
    boto3.client("s3", **boot).create_bucket(Bucket=bucket)
    creds = dict(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    if ROLE:
        c = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1", **creds).assume_role(
            RoleArn=role_arn, RoleSessionName="lister"
        )["Credentials"]
        creds = dict(
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=c["SessionToken"],
        )
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds)
    # The key the server under test signs with.
    print(f"key {key['AccessKeyId']} {key['SecretAccessKey']}", flush=True)
    print(f"port {port}", flush=True)
    if ROLE:
        print(f"role {role_arn}", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "list":
            out = {}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for o in page.get("Contents", []):
                    body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                    out[o["Key"]] = [o["Size"], body[:2].hex()]
            print(json.dumps(out), flush=True)
        elif cmd == "stop":
            server.stop()
            print("stopped", flush=True)
    server.stop()


if __name__ == "__main__":
    main()
