"""A real S3-compatible server for tests: moto's server on 127.0.0.1, a free
port, with one bucket and a user allowed to use it; signatures are checked.
Prints `key ID SECRET` and `port N`, then answers commands on stdin:

    list            -> one JSON object {key: [size, first two bytes as hex]}
    stop            -> stops serving (the port is closed), prints `stopped`

Exits when stdin closes.
"""

import json
import os
import sys

# Signatures and access keys are checked after the first four requests
# (the ones that make the user, its key, its policy and the bucket).
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
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
    iam.put_user_policy(UserName="gatehouse", PolicyName="s3", PolicyDocument=POLICY)
    boto3.client("s3", **boot).create_bucket(Bucket=bucket)
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name="us-east-1",
    )
    # The key the server under test signs with.
    print(f"key {key['AccessKeyId']} {key['SecretAccessKey']}", flush=True)
    print(f"port {port}", flush=True)
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
