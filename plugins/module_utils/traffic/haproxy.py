"""HAProxy as a traffic router, driven through its runtime API (the admin stats socket).

Weights change with `set weight`, which HAProxy applies to the next request without a reload,
so a switch drops nothing. After every change the servers' state is saved to the server-state
file that `load-server-state-from-file` reads, so a reload or restart keeps the live colour.

Servers are named `<host>_<colour>` (app1_blue, app1_green); the suffix says the colour.
"""

from __future__ import annotations

import os
import socket
import tempfile

from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import (
    COLOURS,
    Member,
    TrafficBackend,
    TrafficError,
    TrafficState,
)

# srv_op_state values (include/haproxy/server-t.h)
OP_STATES = {0: "stopped", 1: "starting", 2: "running", 3: "stopping"}
OP_RUNNING = 2
# srv_admin_state bits: forced/inherited/config/resolver maintenance and drain
ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
ADMIN_DRAIN = 0x08 | 0x10


def colour_of(server_name: str, separator: str = "_") -> str | None:
    suffix = server_name.rsplit(separator, 1)[-1] if separator in server_name else ""
    return suffix if suffix in COLOURS else None


def parse_servers_state(text: str) -> list[dict[str, str]]:
    """Parse `show servers state` output (format version 1) into one dict per server."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise TrafficError("HAProxy returned nothing for 'show servers state'")
    if lines[0].strip() != "1":
        raise TrafficError(f"unexpected 'show servers state' format: {lines[0][:120]!r}")
    header: list[str] = []
    rows = []
    for line in lines[1:]:
        if line.startswith("#"):
            header = line.lstrip("# ").split()
            continue
        if not header:
            raise TrafficError("'show servers state' output has no header line")
        fields = line.split()
        rows.append(dict(zip(header, fields, strict=False)))
    return rows


def member_from_row(row: dict[str, str], separator: str = "_") -> Member | None:
    colour = colour_of(row["srv_name"], separator)
    if colour is None:
        return None
    op_state = int(row["srv_op_state"])
    admin = int(row["srv_admin_state"])
    maint = bool(admin & ADMIN_MAINT)
    drain = bool(admin & ADMIN_DRAIN)
    healthy = op_state == OP_RUNNING and not maint
    detail = OP_STATES.get(op_state, str(op_state))
    if maint:
        detail += ", maintenance"
    if drain:
        detail += ", drain"
    return Member(
        name=row["srv_name"],
        colour=colour,
        healthy=healthy,
        weight=int(row["srv_uweight"]),
        detail=detail,
    )


def state_from_rows(rows: list[dict[str, str]], pool: str, separator: str = "_") -> TrafficState:
    members = []
    for row in rows:
        if row.get("be_name") != pool:
            continue
        member = member_from_row(row, separator)
        if member:
            members.append(member)
    if not members:
        raise TrafficError(
            f"HAProxy backend {pool!r} has no servers named <host>{separator}<colour> (colours: {', '.join(COLOURS)})"
        )
    weights = {}
    for colour in COLOURS:
        colour_weights = [m.weight for m in members if m.colour == colour]
        if colour_weights:
            # every server of a colour carries the colour's weight; if they disagree (someone
            # changed one by hand), report the largest so the colour is not mistaken for idle
            weights[colour] = max(colour_weights)
    return TrafficState(weights=weights, members=members)


class HAProxyRuntime(TrafficBackend):
    """Weights per colour through HAProxy's runtime API socket."""

    name = "haproxy"
    OPTIONS = {
        "socket": {"type": "path", "default": "/run/haproxy/admin.sock"},
        "pool": {"type": "str", "default": "app"},
        "state_file": {"type": "path", "default": "/var/lib/haproxy/server-state"},
        "timeout": {"type": "float", "default": 5.0},
        "separator": {"type": "str", "default": "_"},
    }

    def __init__(
        self,
        socket: str = "/run/haproxy/admin.sock",
        pool: str = "app",
        state_file: str | None = "/var/lib/haproxy/server-state",
        timeout: float = 5.0,
        separator: str = "_",
    ):
        self.socket_path = socket
        self.pool = pool
        self.state_file = state_file
        self.timeout = timeout
        self.separator = separator

    def command(self, line: str) -> str:
        """Send one runtime API command line (may hold several commands split by ';')."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.socket_path)
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except FileNotFoundError:
            raise TrafficError(
                f"HAProxy runtime socket {self.socket_path} does not exist: is HAProxy running?"
            ) from None
        except OSError as exc:
            raise TrafficError(f"HAProxy runtime socket {self.socket_path}: {exc}") from None
        return b"".join(chunks).decode(errors="replace")

    def read(self) -> TrafficState:
        out = self.command(f"show servers state {self.pool}")
        if out.lstrip().startswith(("Can't find backend", "Unknown backend")):
            raise TrafficError(f"HAProxy has no backend named {self.pool!r}")
        return state_from_rows(parse_servers_state(out), self.pool, self.separator)

    def commands_for(self, current: TrafficState, weights: dict[str, int]) -> list[str]:
        """Runtime API commands setting each colour's servers to its weight; raised weights first,
        so there is never a moment with less capacity than before."""
        rising = [c for c in weights if weights[c] > current.weights.get(c, 0)]
        falling = [c for c in weights if c not in rising]
        cmds = []
        for colour in rising + falling:
            for member in current.members:
                if member.colour == colour and member.weight != weights[colour]:
                    cmds.append(f"set weight {self.pool}/{member.name} {weights[colour]}")
        return cmds

    def apply(self, weights: dict[str, int]) -> None:
        current = self.read()
        cmds = self.commands_for(current, weights)
        if not cmds:
            return
        out = self.command("; ".join(cmds)).strip()
        if out:
            raise TrafficError(f"HAProxy refused the weight change: {out}")
        self.save_state()

    def save_state(self) -> None:
        """Write `show servers state` to the server-state file, atomically."""
        if not self.state_file:
            return
        text = self.command("show servers state")
        parse_servers_state(text)  # never write something HAProxy could not load back
        directory = os.path.dirname(self.state_file) or "."
        fd, tmp = tempfile.mkstemp(prefix=".server-state.", dir=directory)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text if text.endswith("\n") else text + "\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.state_file)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
