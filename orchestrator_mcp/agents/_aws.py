"""The AWS summary of the infrastructure agent: EC2 instances and CloudWatch alarms in ALARM.

boto3 is imported inside the call (it is heavy and optional); credentials are checked
before any AWS API call. Runs in a thread: boto3 blocks.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastmcp.exceptions import ToolError
from pydantic import AfterValidator, BaseModel, Field

AWS_MAX_ITEMS = 500
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+){1,3}-\d{1,2}$")


def check_region(region: str) -> str:
    if not _REGION.match(region):
        raise ValueError(f"{region!r} is not an AWS region name such as 'eu-west-1'")
    return region


Region = Annotated[str, Field(max_length=32), AfterValidator(check_region)]


class Ec2Instance(BaseModel):
    id: str
    name: str | None
    state: str
    type: str
    availability_zone: str | None


class CloudWatchAlarm(BaseModel):
    name: str
    metric: str | None
    namespace: str | None
    reason: str | None
    since: str | None


class AwsSummary(BaseModel):
    region: str
    instances: list[Ec2Instance]
    alarms_in_alarm: list[CloudWatchAlarm]
    truncated: bool = Field(description=f"more than {AWS_MAX_ITEMS} instances or alarms")



def aws_summary_sync(region: str | None, timeout: float) -> AwsSummary:
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise ToolError("boto3 is not installed — install orchestrator-mcp[bedrock] to use "
                        "the AWS summary") from None
    session = boto3.Session(region_name=region)
    if session.get_credentials() is None:
        raise ToolError("no AWS credentials found — configure them (AWS_PROFILE, "
                        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or an "
                        "instance role) for the server's user")
    if not session.region_name:
        raise ToolError("no AWS region — pass region, set aws_region under agents: "
                        "infrastructure: in servers.yaml, or set AWS_REGION")
    config = Config(connect_timeout=timeout, read_timeout=timeout,
                    retries={"max_attempts": 2, "mode": "standard"})
    instances: list[Ec2Instance] = []
    alarms: list[CloudWatchAlarm] = []
    try:
        ec2 = session.client("ec2", config=config)
        for page in ec2.get_paginator("describe_instances").paginate():
            for reservation in page.get("Reservations", []):
                for item in reservation.get("Instances", []):
                    tags = {t.get("Key"): t.get("Value") for t in item.get("Tags", [])}
                    instances.append(Ec2Instance(
                        id=item["InstanceId"], name=tags.get("Name"),
                        state=item.get("State", {}).get("Name", "unknown"),
                        type=item.get("InstanceType", "unknown"),
                        availability_zone=item.get("Placement", {}).get("AvailabilityZone")))
            if len(instances) > AWS_MAX_ITEMS:
                break
        cloudwatch = session.client("cloudwatch", config=config)
        for page in cloudwatch.get_paginator("describe_alarms").paginate(
                StateValue="ALARM", AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
            for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                updated = alarm.get("StateUpdatedTimestamp")
                alarms.append(CloudWatchAlarm(
                    name=alarm["AlarmName"], metric=alarm.get("MetricName"),
                    namespace=alarm.get("Namespace"), reason=alarm.get("StateReason"),
                    since=updated.isoformat() if updated is not None else None))
            if len(alarms) > AWS_MAX_ITEMS:
                break
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ToolError(f"AWS refused {exc.operation_name}: {error.get('Code')}: "
                        f"{error.get('Message')}") from None
    except BotoCoreError as exc:
        raise ToolError(f"AWS call failed: {exc}") from None
    return AwsSummary(region=session.region_name, instances=instances[:AWS_MAX_ITEMS],
                      alarms_in_alarm=alarms[:AWS_MAX_ITEMS],
                      truncated=len(instances) > AWS_MAX_ITEMS or len(alarms) > AWS_MAX_ITEMS)
