"""Bad input for the cluster workload (roles/aws_eks_workload) fails before any AWS call, with a
message that names what to fix (moto's request recording stays empty)."""

from __future__ import annotations

import pytest

PROVISION = "playbooks/aws/provision.yml"

CASES = {
    "an unpinned controller chart": (
        {"aws_eks_workload_lbc_chart_version": "latest"},
        "aws_eks_workload_lbc_chart_version is 'latest': it must be a pinned chart version (x.y.z)",
    ),
    "a missing cost-centre tag": (
        {"aws_eks_workload_tags": {"environment": "staging", "owner": "platform-engineering"}},
        "aws_eks_workload_tags must hold a non-empty 'cost-centre' tag",
    ),
    "a namespace Kubernetes refuses": (
        {"aws_eks_workload_app_namespace": "Free4AllWeb"},
        "aws_eks_workload_app_namespace is 'Free4AllWeb': it must be a DNS label",
    ),
    "an sslmode libpq does not know": (
        {"aws_eks_workload_db_sslmode": "maybe"},
        "aws_eks_workload_db_sslmode",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_workload_input_fails_before_any_aws_call(play, case):
    extra_vars, message = CASES[case]
    run = play(PROVISION, extra_vars=extra_vars)
    assert run.rc != 0, f"{case}: the playbook should have failed\n{run.tail()}"
    assert message in " ".join(run.output.split()), f"{case}: message not found\n{run.tail()}"
    assert run.calls == [], f"{case}: AWS calls before the input check failed: {run.calls}"
    assert run.recap.get("changed") == 0
