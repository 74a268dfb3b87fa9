# shellcheck shell=bash
# Sourced by the project's scripts: one place for paths and the environment every command needs.
F4A_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export F4A_ROOT
export F4A_VENV="${F4A_VENV:-$F4A_ROOT/.venv}"
export F4A_CACHE="${F4A_CACHE:-$F4A_ROOT/.cache}"
# Podman settings this project needs (runc, cgroupfs, explicit ulimits) without touching the host's.
export CONTAINERS_CONF="$F4A_ROOT/lab/containers.conf"
export ANSIBLE_CONFIG="$F4A_ROOT/ansible.cfg"
export PATH="$F4A_VENV/bin:$PATH"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# ansible-compat (molecule, ansible-lint) must not try to reach Galaxy.
export ANSIBLE_COLLECTIONS_PATH="$F4A_ROOT/collections"
