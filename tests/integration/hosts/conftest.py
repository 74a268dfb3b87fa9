"""The lab, once per session: podman containers running systemd, provisioned by the real
playbooks. Tests run in file order and each leaves the lab serving a known release.

The fixture is session-scoped, so every file here shares one lab_up(); lab_up() also skips
provision.yml when an earlier process of the same scripts/test or scripts/bench run
(F4A_LAB_SESSION) provisioned these containers from unchanged roles and inventory."""

from __future__ import annotations

import pytest

from tests.support import lab


@pytest.fixture(scope="session")
def provisioned_lab():
    created, provisioned = lab.lab_up()
    return {"created": created, "provisioned": provisioned}
