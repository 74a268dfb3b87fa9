"""Where manifests, logical dumps and verification records live: beside the backups, in the
pgBackRest repository itself (a directory for posix repositories, the bucket for S3 ones).

Keys are relative to the repository path, under `f4a/<stanza>/`:
    manifest/<label>.json            the data manifest of a physical backup
    logical/<stamp>/...              one logical backup: <db>.dump, globals.sql, manifest.json
    verified/<label>.json            the last verification of a backup

In an encrypted repository (pgBackRest's `cipher-pass`) every object our code writes through
`put_text` (manifests, verification records) is encrypted with that passphrase, like the logical
dumps: openssl enc with CIPHER (AES-256-CBC, PBKDF2), the passphrase through openssl's
environment, never on a command line. `get_text` decrypts it. An object stored in plaintext (one
written before the repository was encrypted, or before this code encrypted it) is still read
back as it is: the data manifest's sha256 in the backup's annotation is checked all the same. The
encryption keeps the objects confidential; it does not authenticate them (CBC has no MAC).

S3 requests are signed (AWS SigV4) by curl (`--aws-sigv4`, curl >= 7.75); the credentials reach
curl on its standard input, never on a command line. pgBackRest's own S3 options configure it:
endpoint, port, bucket, region, key, key-secret, uri-style, storage-verify-tls, storage-ca-file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import tempfile
import urllib.parse
import xml.etree.ElementTree as ET

from .runner import CommandFailed, Runner

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# openssl enc options of everything encrypted beside the backups: logical dumps and JSON objects
CIPHER = ("-aes-256-cbc", "-pbkdf2", "-iter", "100000")
# how openssl's salted format begins (a JSON object begins with "{")
ENCRYPTED_MAGIC = b"Salted__"


class StoreError(Exception):
    pass


class UnreadableObject(StoreError):
    """An object that is there but cannot be read: it does not decrypt, or it is not text."""


def _openssl(runner, src: str, dest: str, passphrase: str, *, decrypt: bool, timeout: float) -> None:
    env = dict(os.environ, F4A_DUMP_PASS=passphrase)
    mode = ["-d", *CIPHER] if decrypt else ["-e", *CIPHER, "-salt"]
    runner.run(
        ["openssl", "enc", *mode, "-in", src, "-out", dest, "-pass", "env:F4A_DUMP_PASS"], env=env, timeout=timeout
    )


def encrypt_file(runner, src: str, dest: str, passphrase: str, timeout: float = 3600) -> None:
    """src encrypted into dest (CIPHER), openssl run by runner with the passphrase in its
    environment. Raises CommandFailed."""
    _openssl(runner, src, dest, passphrase, decrypt=False, timeout=timeout)


def decrypt_file(runner, src: str, dest: str, passphrase: str, timeout: float = 3600) -> None:
    """The reverse of encrypt_file. Raises CommandFailed (wrong passphrase, corrupt input)."""
    _openssl(runner, src, dest, passphrase, decrypt=True, timeout=timeout)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Store:
    description = ""
    # the repository's cipher pass: objects written by put_text are encrypted with it
    passphrase: str | None = None
    # seconds openssl may take over one JSON object
    crypt_timeout = 300

    def put_file(self, key: str, path: str) -> None:
        raise NotImplementedError

    def get_file(self, key: str, path: str) -> None:
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    runner = None

    @contextlib.contextmanager
    def _scratch(self):
        """A private temporary directory the commands' user (curl runs as postgres) can use."""
        with tempfile.TemporaryDirectory(prefix="f4a-store-") as tmp:
            if self.runner is not None:
                self.runner.own(tmp)
            yield tmp

    def _runner(self):
        """The store's runner, or one running commands as this process's own user."""
        return self.runner or Runner(user=pwd.getpwuid(os.geteuid()).pw_name)

    def put_text(self, key: str, text: str) -> None:
        """Store text at key, encrypted when the store has a passphrase."""
        with self._scratch() as tmp:
            path = os.path.join(tmp, "object")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            if self.runner is not None:
                self.runner.own(path)
            if self.passphrase:
                encrypted = os.path.join(tmp, "object.enc")
                try:
                    encrypt_file(self._runner(), path, encrypted, self.passphrase, timeout=self.crypt_timeout)
                except CommandFailed as exc:
                    raise StoreError(f"{self.description}/{key} could not be encrypted: {exc}") from exc
                path = encrypted
            self.put_file(key, path)

    def get_text(self, key: str) -> str | None:
        """The object's text, or None when it does not exist. An encrypted object is decrypted with
        the store's passphrase; a plaintext one is returned as it is (see the module's docstring).
        Raises UnreadableObject, naming the object, when it does not decrypt or is not text."""
        name = f"{self.description}/{key}"
        with self._scratch() as tmp:
            path = os.path.join(tmp, "object")
            try:
                self.get_file(key, path)
            except FileNotFoundError:
                return None
            if self.runner is not None:
                self.runner.own(path)
            with open(path, "rb") as fh:
                encrypted = fh.read(len(ENCRYPTED_MAGIC)) == ENCRYPTED_MAGIC
            if encrypted:
                if not self.passphrase:
                    raise UnreadableObject(f"{name} is encrypted and the repository has no cipher pass")
                plain = os.path.join(tmp, "object.plain")
                try:
                    decrypt_file(self._runner(), path, plain, self.passphrase, timeout=self.crypt_timeout)
                except CommandFailed as exc:
                    detail = " / ".join(exc.stderr.strip().splitlines()[-2:]) or str(exc)
                    raise UnreadableObject(
                        f"{name} does not decrypt with the repository's cipher pass "
                        f"(wrong passphrase, or the object is corrupt): {detail}"
                    ) from exc
                path = plain
            with open(path, "rb") as fh:
                data = fh.read()
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as exc:
                how = "decrypts to" if encrypted else "is"
                raise UnreadableObject(
                    f"{name} {how} {len(data)} bytes that are not UTF-8 text (corrupt, or a wrong passphrase)"
                ) from exc

    def exists(self, key: str) -> bool:
        """Whether an object is stored at key (read, not decrypted)."""
        with self._scratch() as tmp:
            try:
                self.get_file(key, os.path.join(tmp, "object"))
            except FileNotFoundError:
                return False
            return True


class PosixStore(Store):
    def __init__(self, root: str, runner=None, passphrase: str | None = None):
        self.root = root
        self.runner = runner
        self.passphrase = passphrase or None
        self.description = f"posix {root}"
        if runner is not None:
            runner.add_secret(passphrase)

    def _path(self, key: str) -> str:
        return os.path.join(self.root, key.lstrip("/"))

    def _own(self, path: str) -> None:
        if self.runner is not None:
            self.runner.own(path)

    def put_file(self, key: str, path: str) -> None:
        dest = self._path(key)
        parent = os.path.dirname(dest)
        missing = []
        while parent and not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for directory in reversed(missing):
            os.mkdir(directory, 0o750)
            self._own(directory)
        tmp = dest + ".part"
        shutil.copyfile(path, tmp)
        os.chmod(tmp, 0o640)
        self._own(tmp)
        os.replace(tmp, dest)

    def get_file(self, key: str, path: str) -> None:
        src = self._path(key)
        if not os.path.exists(src):
            raise FileNotFoundError(src)
        shutil.copyfile(src, path)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        out = []
        for directory, _dirs, files in os.walk(base):
            for name in files:
                full = os.path.join(directory, name)
                out.append(os.path.relpath(full, self.root))
        return sorted(out)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))
        parent = os.path.dirname(self._path(key))
        while parent.startswith(self.root.rstrip("/") + "/") and os.path.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)
            parent = os.path.dirname(parent)


class S3Store(Store):
    CONNECT_TIMEOUT = 20
    STALL_SECONDS = 30
    MAX_SECONDS = 3600

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        region: str,
        key: str,
        secret: str,
        prefix: str = "",
        port: int = 443,
        uri_style: str = "host",
        verify_tls: bool = True,
        ca_file: str | None = None,
        runner=None,
        curl: str = "curl",
        passphrase: str | None = None,
    ):
        self.endpoint, self.bucket, self.region = endpoint, bucket, region
        self.key, self.secret = key, secret
        self.prefix = prefix.strip("/")
        self.port = int(port)
        self.uri_style = uri_style
        self.verify_tls, self.ca_file = verify_tls, ca_file
        self.runner = runner
        self.curl = curl
        self.passphrase = passphrase or None
        self.description = f"s3://{bucket}/{self.prefix} at {endpoint}:{self.port}"
        if runner is not None:
            runner.add_secret(secret)
            runner.add_secret(passphrase)

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key.lstrip('/')}" if self.prefix else key.lstrip("/")

    def _base(self) -> str:
        if self.uri_style == "path":
            return f"https://{self.endpoint}:{self.port}/{self.bucket}"
        return f"https://{self.bucket}.{self.endpoint}:{self.port}"

    def _request(self, method: str, object_key: str = "", *, query=None, upload=None, download=None) -> str:
        url = self._base() + "/" + urllib.parse.quote(object_key, safe="/~")
        if query:
            url += "?" + urllib.parse.urlencode(sorted(query.items()), quote_via=urllib.parse.quote)
        payload_hash = sha256_file(upload) if upload else EMPTY_SHA256
        with self._scratch() as tmp:
            body = os.path.join(tmp, "body")
            args = [
                self.curl,
                "--silent",
                "--show-error",
                "--config",
                "-",
                "--aws-sigv4",
                f"aws:amz:{self.region}:s3",
                "--header",
                f"x-amz-content-sha256: {payload_hash}",
                "--request",
                method,
                "--output",
                download or body,
                "--write-out",
                "%{http_code}",
                "--retry",
                "2",
                # bounded time: no connection in CONNECT_TIMEOUT s, or no byte moving for
                # STALL_SECONDS s, or MAX_SECONDS s in all, and the request fails
                "--connect-timeout",
                str(self.CONNECT_TIMEOUT),
                "--speed-limit",
                "1",
                "--speed-time",
                str(self.STALL_SECONDS),
                "--max-time",
                str(self.MAX_SECONDS),
            ]
            if not self.verify_tls:
                args.append("--insecure")
            elif self.ca_file:
                args += ["--cacert", self.ca_file]
            if upload:
                args += ["--upload-file", upload]
            args.append(url)
            # the credentials go to curl on stdin (never on its command line, which ps shows)
            config = f'user = "{self.key}:{self.secret}"\n'
            proc = (self.runner.run if self.runner else _run)(
                args, check=False, stdin=config, timeout=(self.MAX_SECONDS + 60) * 3
            )
            status = proc.stdout.strip()[-3:]
            text = ""
            if os.path.exists(body):
                with open(body, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
            if proc.returncode or not status.startswith("2"):
                if status == "404":
                    if download and os.path.exists(download):
                        os.unlink(download)
                    raise FileNotFoundError(f"{self.description}: {object_key} not found")
                detail = (proc.stderr.strip() or text.strip())[-300:]
                raise StoreError(f"S3 {method} {object_key or '/'} on {self.description} failed ({status}): {detail}")
            return text

    def put_file(self, key: str, path: str) -> None:
        self._request("PUT", self._object_key(key), upload=path)

    def get_file(self, key: str, path: str) -> None:
        self._request("GET", self._object_key(key), download=path)

    def delete(self, key: str) -> None:
        self._request("DELETE", self._object_key(key))

    def list(self, prefix: str) -> list[str]:
        full = self._object_key(prefix)
        out: list[str] = []
        token = None
        while True:
            query = {"list-type": "2", "prefix": full}
            if token:
                query["continuation-token"] = token
            text = self._request("GET", "", query=query)
            root = ET.fromstring(text)
            ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            for item in root.findall(f"{ns}Contents"):
                name = item.findtext(f"{ns}Key") or ""
                out.append(name[len(self.prefix) + 1 :] if self.prefix else name)
            if root.findtext(f"{ns}IsTruncated") != "true":
                break
            token = root.findtext(f"{ns}NextContinuationToken")
        return sorted(out)


def _run(args, check=False, stdin=None, timeout=None):
    import subprocess

    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=check, timeout=timeout)


def store_for(options: dict, runner=None) -> Store:
    """The store of one repository, from its pgBackRest options (pgbackrest.repo_options): with
    the repository's cipher-pass when it has one, so what put_text stores is encrypted."""
    kind = options.get("type", "posix")
    passphrase = options.get("cipher-pass") or None
    if kind == "posix":
        return PosixStore(options.get("path", "/var/lib/pgbackrest"), runner, passphrase=passphrase)
    if kind == "s3":
        verify = options.get("storage-verify-tls", options.get("s3-verify-tls", "y")) not in ("n", "no", "false", "0")
        return S3Store(
            endpoint=options["s3-endpoint"],
            bucket=options["s3-bucket"],
            region=options["s3-region"],
            key=options.get("s3-key", ""),
            secret=options.get("s3-key-secret", ""),
            prefix=options.get("path", "/"),
            port=int(options.get("storage-port", options.get("s3-port", 443))),
            uri_style=options.get("s3-uri-style", "host"),
            verify_tls=verify,
            ca_file=options.get("storage-ca-file") or options.get("s3-ca-file"),
            runner=runner,
            passphrase=passphrase,
        )
    raise StoreError(f"repository type {kind} is not supported for manifests and logical dumps (posix and s3 are)")


def stanza_prefix(stanza: str) -> str:
    return f"f4a/{stanza}"
