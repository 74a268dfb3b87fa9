"""How recorded moto requests are named and classified, and the ALB listener filter."""

from __future__ import annotations

import base64
import json

from ansible_collections.free4allweb.devops.plugins.module_utils.aws.edge import actions_as_compared
from tests.support.aws_calls import classify, read_recording, summary

AUTH = "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, SignedHeaders=host"


def entry(method, url, service, region="eu-west-1", body="", target=None, encoded=False):
    headers = {"Authorization": AUTH.format(region=region, service=service)}
    if target:
        headers["X-Amz-Target"] = target
    if encoded:
        body = base64.b64encode(body.encode()).decode()
    return {"method": method, "url": url, "headers": headers, "body": body, "body_encoded": encoded}


def test_query_protocol_action_from_the_body():
    read = classify(entry("POST", "http://h/", "ec2", body="Action=DescribeVpcs&Version=2016-11-15"))
    write = classify(entry("POST", "http://h/", "rds", body="Action=ModifyDBInstance&X=1", encoded=True))
    assert (read.service, read.region, read.operation, read.mutating) == ("ec2", "eu-west-1", "DescribeVpcs", False)
    assert (write.service, write.operation, write.mutating) == ("rds", "ModifyDBInstance", True)


def test_json_protocol_operation_from_the_target_header():
    call = classify(entry("POST", "http://h/", "secretsmanager", target="secretsmanager.GetSecretValue"))
    assert (call.operation, call.mutating) == ("GetSecretValue", False)
    call = classify(entry("POST", "http://h/", "secretsmanager", target="secretsmanager.PutSecretValue"))
    assert call.mutating


def test_rest_protocol_from_method_and_path():
    get = classify(entry("GET", "http://h/free4allweb-staging-backups-1?versioning", "s3"))
    put = classify(entry("PUT", "http://h/free4allweb-staging-backups-1?lifecycle", "s3"))
    post = classify(entry("POST", "http://h/clusters/c/update-config", "eks"))
    assert (get.operation, get.mutating) == ("GET /{id}?versioning", False)
    assert (put.operation, put.mutating) == ("PUT /{id}?lifecycle", True)
    assert post.mutating


def test_moto_api_requests_are_not_aws_calls():
    assert classify({"method": "POST", "url": "http://h/moto-api/recorder/start-recording", "headers": {}}) is None


def test_summary_counts_writes():
    lines = "\n".join(
        json.dumps(e)
        for e in (
            entry("POST", "http://h/", "ec2", body="Action=DescribeVpcs"),
            entry("POST", "http://h/", "ec2", body="Action=CreateVpc"),
            entry("GET", "http://h/2013-04-01/hostedzone", "route53", region="us-east-1"),
        )
    )
    result = summary(read_recording(lines + "\n"))
    assert result["total"] == 3
    assert result["mutating"] == 1
    assert result["mutating_operations"] == {"ec2:CreateVpc": 1}
    assert result["by_service"] == {"ec2": 2, "route53": 1}


def test_weighted_forward_reduces_to_what_elb_application_lb_compares():
    weighted = {
        "type": "forward",
        "order": 1,
        "forward_config": {"target_groups": [{"target_group_arn": "arn:b", "weight": 90}]},
    }
    assert actions_as_compared([weighted]) == [{"Type": "forward"}]


def test_single_group_forward_and_redirect_keep_their_compared_keys():
    actions = [
        {"type": "forward", "target_group_arn": "arn:b", "forward_config": {"target_groups": []}},
        {"type": "redirect", "redirect_config": {"protocol": "HTTPS", "status_code": "HTTP_301"}},
    ]
    assert actions_as_compared(actions) == [
        {"Type": "forward", "TargetGroupArn": "arn:b"},
        {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "StatusCode": "HTTP_301"}},
    ]
