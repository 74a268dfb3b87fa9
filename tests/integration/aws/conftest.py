"""The aws platform's end-to-end tests: the real playbooks against a moto server.

One moto server per session (tests/support/moto_server.py on 127.0.0.1, a port below 32768),
stopped afterwards. The staging stack is provisioned once, by the first test that needs it;
the test files run in the order of their names and build on each other's state:
provision -> bad input -> ALB switching -> rerun and check mode -> DR region.
"""

from __future__ import annotations

import pytest

from tests.support.aws_moto import DR, PRIMARY, ROOT, STAGING, Moto, PlaybookRun, run_playbook


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    server = Moto(ROOT / ".cache" / "aws-tests" / "moto.log", region=PRIMARY).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def staging_vars(moto, tmp_path_factory):
    """What a real staging inventory gets from outside: the ACM certificates (issued in ACM
    before the first provision) and where to write the kubeconfig."""
    certs = {
        region: moto.client("acm", region).request_certificate(DomainName="api.staging.free4allweb.example")[
            "CertificateArn"
        ]
        for region in (PRIMARY, DR)
    }
    return {
        "free4allweb_aws_certificate_arn": certs[PRIMARY],
        "free4allweb_aws_dr_certificate_arn": certs[DR],
        "aws_eks_kubeconfig_path": str(tmp_path_factory.mktemp("kube") / "staging.yaml"),
    }


@pytest.fixture(scope="session")
def play(moto, staging_vars):
    """Run a playbook against moto with the staging inputs; returns a PlaybookRun."""

    def run(playbook: str, inventory: str = STAGING, extra_vars: dict | None = None, **kwargs) -> PlaybookRun:
        return run_playbook(moto, playbook, inventory, {**staging_vars, **(extra_vars or {})}, **kwargs)

    return run


@pytest.fixture(scope="session")
def provisioned(play) -> PlaybookRun:
    """The cold provision of staging (verbose, so the secrets test greps module results too)."""
    run = play("playbooks/aws/provision.yml", verbose=1)
    if run.rc != 0:
        pytest.fail(f"provisioning staging failed (rc {run.rc}):\n{run.tail()}")
    return run
