# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the k8s_app role: its input problems and its manifests (logic in module_utils)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.free4allweb.devops.plugins.module_utils.k8s_app import (
    ReleaseError,
    manifests,
    parse_quantity,
    release_problems,
)


def k8s_app_problems(params):
    """Each thing wrong with the k8s_app inputs, as a message naming the variable ([] when fine)."""
    return release_problems(dict(params))


def k8s_app_manifests(params):
    """The release's objects, in apply order (fails on invalid inputs)."""
    try:
        return manifests(dict(params))
    except ReleaseError as exc:
        raise AnsibleFilterError(str(exc)) from None


def k8s_quantity(value):
    """A Kubernetes quantity (250m, 512Mi) as a float, for comparisons in templates."""
    try:
        return float(parse_quantity(value))
    except ReleaseError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {
            "k8s_app_problems": k8s_app_problems,
            "k8s_app_manifests": k8s_app_manifests,
            "k8s_quantity": k8s_quantity,
        }
