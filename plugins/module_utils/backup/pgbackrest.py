"""pgBackRest as this collection uses it: info, backup, verify, restore, and its configuration.

`verify` is pgBackRest's own structural check (every file's checksum and size against the
backup's manifest, every archived WAL segment's checksum). It says nothing about WAL that is not
there: a segment a backup needs for consistency can be missing while verify reports the backup
valid (measured with 2.45). So `verify_set` also proves that the archive holds every segment
from the backup's start to the point it must be recovered to, and `wal_check` proves only that,
from a listing of the archive (a full verification, whose restore checks the files).
"""

from __future__ import annotations

import configparser
import json
import re
import time

from .runner import CommandFailed

WAL_SEGMENT_SIZE = 16 * 1024 * 1024


class PgBackRestError(Exception):
    pass


def read_config(path: str) -> configparser.RawConfigParser:
    conf = configparser.RawConfigParser(strict=False, interpolation=None)
    conf.optionxform = str  # option names are case-sensitive
    with open(path, encoding="utf-8") as fh:
        conf.read_file(fh)
    return conf


def repo_options(conf: configparser.RawConfigParser, stanza: str, repo: int) -> dict[str, str]:
    """repoN-* options of one repository (the stanza's section overrides [global]), without the
    `repoN-` prefix, plus `type` (default posix) and `path` (default /var/lib/pgbackrest)."""
    prefix = f"repo{repo}-"
    out: dict[str, str] = {}
    for section in ("global", stanza):
        if conf.has_section(section):
            for key, value in conf.items(section):
                if key.startswith(prefix):
                    out[key[len(prefix) :]] = value
    out.setdefault("type", "posix")
    out.setdefault("path", "/var/lib/pgbackrest")
    return out


def repositories(conf: configparser.RawConfigParser, stanza: str) -> list[int]:
    """The repository numbers configured (repo1 when none is named, as pgBackRest does)."""
    found = set()
    for section in ("global", stanza):
        if conf.has_section(section):
            for key, _value in conf.items(section):
                m = re.match(r"repo(\d+)-", key)
                if m:
                    found.add(int(m.group(1)))
    return sorted(found) or [1]


def segment_name(timeline: int, number: int) -> str:
    """Name of WAL segment `number` (absolute, as segment_number gives it) on `timeline`."""
    per_id = 0x100000000 // WAL_SEGMENT_SIZE
    return f"{timeline:08X}{number // per_id:08X}{number % per_id:08X}"


def wal_segment(lsn: str, timeline: int) -> str:
    """Name of the 16 MiB WAL segment holding `lsn` (X/Y) on `timeline`."""
    high, low = (int(part, 16) for part in lsn.split("/"))
    return segment_name(timeline, ((high << 32) | low) // WAL_SEGMENT_SIZE)


def segment_number(name: str) -> tuple[int, int]:
    """(timeline, absolute segment number) of a WAL segment name."""
    per_id = 0x100000000 // WAL_SEGMENT_SIZE
    return int(name[:8], 16), int(name[8:16], 16) * per_id + int(name[16:24], 16)


def parse_verify(text: str) -> dict:
    """pgbackrest verify --output=text --verbose --log-level-console=detail, as data."""
    ranges = [
        (m.group(1), m.group(2), m.group(3))
        for m in re.finditer(r"archiveId: (\S+), wal start: ([0-9A-F]{24}), wal stop: ([0-9A-F]{24})", text)
    ]
    status = re.search(r"^status: (\S+)", text, re.M)
    backups = {
        m.group(1): {"status": m.group(2), "checked": int(m.group(3)), "valid": int(m.group(4))}
        for m in re.finditer(
            r"backup: (\S+), status: (\S+), total files checked: (\d+), total valid files: (\d+)", text
        )
    }
    problems = []
    for m in re.finditer(
        r"(archiveId: \S+|backup: \S+), (?:status: \S+, )?total .*\n\s+missing: (\d+), checksum invalid: (\d+), "
        r"size invalid: (\d+), other: (\d+)",
        text,
    ):
        counts = dict(
            zip(("missing", "checksum invalid", "size invalid", "other"), map(int, m.groups()[1:]), strict=True)
        )
        bad = {k: v for k, v in counts.items() if v}
        if bad:
            problems.append(f"{m.group(1)}: " + ", ".join(f"{k} {v}" for k, v in bad.items()))
    invalid_files = re.findall(r"INFO: (invalid \w+|missing) '([^']+)'", text)
    return {
        "status": status.group(1) if status else "unknown",
        "backups": backups,
        "wal_ranges": ranges,
        "problems": problems,
        "invalid_files": [f"{what} {path}" for what, path in invalid_files],
    }


# an archived WAL segment: <24 hex>-<sha1>[.ext], under archive/<stanza>/<archive id>/<16 hex>/
SEGMENT_FILE = re.compile(r"([0-9A-F]{24})-[0-9a-f]{40}(?:\.\w+)?$")


def first_missing(segments: set[str], first: str, last: str) -> str | None:
    """The first segment from `first` to `last` (inclusive, one timeline) not in `segments`."""
    tli, start = segment_number(first)
    _tli, stop = segment_number(last)
    return next((segment_name(tli, n) for n in range(start, stop + 1) if segment_name(tli, n) not in segments), None)


def wal_needed(backup: dict, recover_to_lsn: str | None = None) -> tuple[str, str]:
    """The first and last WAL segments a backup needs: from its start to its stop, or to the
    point it is recovered to when that is later."""
    first, last = backup["archive"]["start"], backup["archive"]["stop"]
    if recover_to_lsn:
        last = max(last, wal_segment(recover_to_lsn, int(first[:8], 16)))
    return first, last


def wal_gap(label: str, gap: str, first: str, last: str) -> str:
    return (
        f"WAL segment {gap} is missing from the archive: backup {label} needs {first} to {last} "
        "to reach a consistent state"
    )


def missing_wal(ranges, first: str, last: str) -> str | None:
    """The first segment from `first` to `last` (inclusive) that no archived range holds."""
    tli, start = segment_number(first)
    _tli, stop = segment_number(last)
    covered = []
    for _archive, low, high in ranges:
        rt, lo = segment_number(low)
        _rt, hi = segment_number(high)
        if rt == tli:
            covered.append((lo, hi))
    segment = start
    while segment <= stop:
        holder = next(((lo, hi) for lo, hi in covered if lo <= segment <= hi), None)
        if holder is None:
            return segment_name(tli, segment)
        segment = holder[1] + 1
    return None


class PgBackRest:
    def __init__(self, runner, stanza: str, config: str | None = None, binary: str = "pgbackrest"):
        self.runner = runner
        self.stanza = stanza
        self.config = config
        self.binary = binary

    def command(self, name: str, *options: str) -> list[str]:
        args = [self.binary]
        if self.config:
            args.append(f"--config={self.config}")
        return [*args, f"--stanza={self.stanza}", *options, name]

    def run(self, name: str, *options: str, timeout=None, check=True):
        return self.runner.run(self.command(name, *options), timeout=timeout, check=check)

    def info(self, repo: int | None = None, label: str | None = None) -> dict:
        """The stanza's entry of pgbackrest info (with `label`: of that backup set only, which
        adds details such as the files with page checksum errors)."""
        opts = ["--output=json"] + ([f"--repo={repo}"] if repo else []) + ([f"--set={label}"] if label else [])
        out = self.run("info", *opts).stdout or "[]"
        try:
            # strict=False: a repository it could not decrypt puts raw bytes, control characters
            # included, into the status message
            data = json.loads(out, strict=False)
        except ValueError as exc:
            raise PgBackRestError(f"pgbackrest info --output=json did not print JSON ({exc}): {out[:200]!r}") from exc
        for entry in data:
            if entry.get("name") == self.stanza:
                if repo:
                    self._check_repo_status(entry, repo)
                return entry
        raise PgBackRestError(f"stanza {self.stanza} not found in pgbackrest info")

    def _check_repo_status(self, entry: dict, repo: int) -> None:
        """pgbackrest info exits 0 even when it could not read a repository (a wrong passphrase
        gives status 99 with the raw bytes it failed on): a repository whose status is not ok or
        "no valid backups" (2) is an error naming it."""
        for listed in entry.get("repo", []):
            if listed.get("key") != repo:
                continue
            status = listed.get("status") or {}
            code = status.get("code", 0)
            if code not in (0, 2):
                message = " ".join(str(status.get("message", "")).split())[:300]
                hint = " (with status 99, a wrong repository passphrase is the usual cause)" if code == 99 else ""
                raise PgBackRestError(
                    f"repo{repo} of stanza {self.stanza} cannot be read: pgbackrest info status {code}: {message}{hint}"
                )

    def backups(self, repo: int | None = None) -> list[dict]:
        """Backups, oldest first, each as pgbackrest info gives it plus `repo`."""
        out = []
        for listed in self.info(repo).get("backup", []):
            backup = dict(listed)
            backup["repo"] = backup.get("database", {}).get("repo-key", 1)
            if repo is None or backup["repo"] == repo:
                out.append(backup)
        return sorted(out, key=lambda b: (b["timestamp"]["stop"], b["label"]))

    def find(self, repo: int, label: str = "latest") -> dict:
        found = self.backups(repo)
        if not found:
            raise PgBackRestError(f"repo{repo} of stanza {self.stanza} holds no backup")
        if label in ("", "latest"):
            return found[-1]
        for backup in found:
            if backup["label"] == label:
                return backup
        raise PgBackRestError(
            f"no backup {label} in repo{repo} of stanza {self.stanza} (it has: {', '.join(b['label'] for b in found)})"
        )

    def backup(self, repo: int, kind: str = "full", timeout=None) -> dict:
        before = {b["label"] for b in self.backups(repo)}
        self.run("backup", f"--repo={repo}", f"--type={kind}", timeout=timeout)
        new = [b for b in self.backups(repo) if b["label"] not in before]
        if not new:
            raise PgBackRestError(f"pgbackrest backup --repo={repo} finished but no new backup is listed")
        return new[-1]

    def page_errors(self, repo: int, label: str) -> list[str]:
        """Files in which pgBackRest found invalid page checksums while backing up `label`
        (pgbackrest info --set lists them; needs data checksums on the cluster)."""
        for backup in self.info(repo, label).get("backup", []):
            if backup.get("label") == label and backup.get("error"):
                return list(backup.get("error-list") or ["(files not listed)"])
        return []

    def annotate(self, repo: int, label: str, annotations: dict[str, str]) -> None:
        opts = [f"--repo={repo}", f"--set={label}"] + [f"--annotation={k}={v}" for k, v in annotations.items()]
        self.run("annotate", *opts)

    def archived_segments(self, repo: int, timeout: float = 600) -> set[str]:
        """Names of the WAL segments in the repository's archive of this stanza (a listing:
        `pgbackrest repo-ls --recurse`, nothing is read or decrypted)."""
        args = [*self.command("repo-ls", f"--repo={repo}", "--recurse", "--output=json"), f"archive/{self.stanza}"]
        out = self.runner.run(args, timeout=timeout).stdout
        try:
            listing = json.loads(out or "{}")
        except ValueError as exc:
            raise PgBackRestError(f"pgbackrest repo-ls did not print JSON ({exc}): {out[:200]!r}") from exc
        found = set()
        for name, entry in listing.items():
            m = SEGMENT_FILE.search(name)
            if m and entry.get("type") == "file":
                found.add(m.group(1))
        return found

    def wal_check(self, repo: int, backup: dict, recover_to_lsn: str | None = None, timeout: float = 600) -> dict:
        """The structural check of a full verification: every WAL segment from the backup's start
        to the point it is recovered to is in the archive (a listing; the backup's files are
        checked by the restore itself, which compares each file with its checksum)."""
        t0 = time.monotonic()
        first, last = wal_needed(backup, recover_to_lsn)
        try:
            have = self.archived_segments(repo, timeout)
        except Exception as exc:  # a listing that fails is this check's failure
            return {"ok": False, "reason": f"could not list the WAL archive: {exc}", "seconds": time.monotonic() - t0}
        gap = first_missing(have, first, last)
        reason = wal_gap(backup["label"], gap, first, last) if gap else ""
        return {"ok": not gap, "reason": reason, "seconds": time.monotonic() - t0, "wal_needed": [first, last]}

    def verify_set(self, repo: int, backup: dict, recover_to_lsn: str | None = None, timeout: float = 3600) -> dict:
        """pgbackrest verify of one backup set (every file against its checksum) plus the WAL it
        needs in the archive: ok, reason, seconds, the parsed report."""
        label = backup["label"]
        args = self.command(
            "verify",
            f"--repo={repo}",
            f"--set={label}",
            "--output=text",
            "--verbose",
            "--log-level-console=detail",
            "--log-level-stderr=off",
        )
        t0 = time.monotonic()
        try:
            proc = self.runner.run(args, check=False, timeout=timeout)
        except CommandFailed as exc:  # stopped at the timeout (or pgbackrest missing)
            why = f"did not finish within {timeout} s and was stopped" if exc.returncode == -1 else f"failed: {exc}"
            return {"ok": False, "reason": f"pgbackrest verify {why}", "seconds": time.monotonic() - t0}
        seconds = time.monotonic() - t0
        out, err = proc.stdout, proc.stderr
        if proc.returncode:
            return {
                "ok": False,
                "reason": f"pgbackrest verify failed (rc {proc.returncode}): {(err or out).strip()[-400:]}",
                "seconds": seconds,
            }
        report = parse_verify(out)
        problems = list(report["problems"])
        mine = report["backups"].get(label)
        if mine is None:
            problems.append(f"pgbackrest verify did not report on backup {label}")
        elif mine["status"] != "valid":
            problems.insert(0, f"backup {label} is {mine['status']}: {mine['valid']} of {mine['checked']} files valid")
        first, last = wal_needed(backup, recover_to_lsn)
        gap = missing_wal(report["wal_ranges"], first, last)
        if gap:
            problems.append(wal_gap(label, gap, first, last))
        if report["invalid_files"]:
            problems.append("; ".join(report["invalid_files"][:5]))
        return {
            "ok": not problems,
            "reason": "; ".join(problems) if problems else "",
            "seconds": seconds,
            "wal_needed": [first, last],
            "report": {k: report[k] for k in ("status", "backups", "wal_ranges")},
        }

    def restore_command(
        self,
        repo: int,
        label: str | None,
        pg_path: str,
        *,
        target_type: str = "default",
        target: str | None = None,
        archive_off: bool = True,
        process_max: int | None = None,
        delta: bool = False,
    ) -> list[str]:
        opts = [f"--repo={repo}", f"--pg1-path={pg_path}"]
        if label:
            opts.append(f"--set={label}")
        if target_type != "default":
            opts.append(f"--type={target_type}")
            if target:
                opts.append(f"--target={target}")
            opts.append("--target-action=promote")
        if archive_off:
            opts.append("--archive-mode=off")
        if process_max:
            opts.append(f"--process-max={process_max}")
        if delta:
            opts.append("--delta")
        return self.command("restore", *opts)
