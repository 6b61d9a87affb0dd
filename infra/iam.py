"""Least-privilege IAM policy documents for one function, from its catalog needs (services/catalog.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from services import catalog

# Lambda in a VPC creates and removes ENIs; these actions cannot be scoped to a resource.
VPC_ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)


def function_policy(
    fn: catalog.Function,
    *,
    bucket_arn: str,
    event_bus_arn: str,
    log_group_arn: str,
    secret_arns: Mapping[str, str],
    dead_letter_queue_arn: str | None = None,
    in_vpc: bool = True,
) -> str:
    """The JSON policy document of one function: its S3 prefixes, bus, secrets, logs and DLQ only."""
    statements: list[dict] = [
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{log_group_arn}:*"],
        }
    ]
    if in_vpc:
        statements.append({"Sid": "VpcNetworkInterfaces", "Effect": "Allow", "Action": list(VPC_ENI_ACTIONS),
                           "Resource": ["*"]})
    for index, access in enumerate(fn.access):
        statements.append(_access_statement(index, access, bucket_arn=bucket_arn, event_bus_arn=event_bus_arn))
    wanted = [secret_arns[name] for name in fn.secrets]
    if wanted:
        statements.append({"Sid": "Secrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                           "Resource": wanted})
    if dead_letter_queue_arn:
        statements.append({"Sid": "FailedEvents", "Effect": "Allow", "Action": ["sqs:SendMessage"],
                           "Resource": [dead_letter_queue_arn]})
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def _access_statement(index: int, access: catalog.Access, *, bucket_arn: str, event_bus_arn: str) -> dict:
    sid = f"Access{index}"
    if access.resource == "event_bus":
        return {"Sid": sid, "Effect": "Allow", "Action": list(access.actions), "Resource": [event_bus_arn]}
    if access.resource != "bucket":
        raise ValueError(f"unknown access resource {access.resource!r}")
    bucket_level = [a for a in access.actions if a == "s3:ListBucket"]
    if bucket_level:
        statement = {"Sid": sid, "Effect": "Allow", "Action": bucket_level, "Resource": [bucket_arn]}
        if access.prefix:
            statement["Condition"] = {"StringLike": {"s3:prefix": [f"{access.prefix}*"]}}
        return statement
    return {"Sid": sid, "Effect": "Allow", "Action": list(access.actions),
            "Resource": [f"{bucket_arn}/{access.prefix}*"]}


def assume_role_policy(services: Sequence[str] = ("lambda.amazonaws.com",)) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": list(services)}, "Action": "sts:AssumeRole"}],
    })
