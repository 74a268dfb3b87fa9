"""The lab, once per session: podman containers running systemd, provisioned by the real
playbooks. Tests run in file order and each leaves the lab serving a known release."""

from __future__ import annotations

import pytest

from tests.support import lab


@pytest.fixture(scope="session")
def provisioned_lab():
    created, provisioned = lab.lab_up()
    return {"created": created, "provisioned": provisioned}
