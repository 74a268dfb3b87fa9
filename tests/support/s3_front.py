"""S3 for pgBackRest in tests: a moto server on 127.0.0.1 behind an nginx TLS front.

pgBackRest only speaks TLS to S3, and moto's own TLS mode breaks it (unexpected EOF after 60 s),
so nginx terminates TLS and proxies to moto over plain HTTP on 127.0.0.1. The certificate is made
here by a throwaway CA; clients trust that CA (storage-ca-file), so TLS is verified for real.

nginx listens on 127.0.0.1 and, for the lab's containers, on the lab bridge's own address
(10.89.40.1, the containers' gateway): nowhere else. moto listens on 127.0.0.1 only.

    with S3Front(workdir, listen=("127.0.0.1", "10.89.40.1")) as s3:
        s3.create_bucket("backups")
        s3.endpoint_for("10.89.40.1")  # what a lab host puts in repo2-s3-endpoint

`python -m tests.support.s3_front up|down --state FILE [--listen ADDR]...` keeps one running
between commands (the benchmark and a hand-run DR drill use it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.aws_moto import Moto, free_port

LAB_GATEWAY = "10.89.40.1"
ALLOWED = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.89.40.0/24"))
REGION = "eu-west-1"
KEY, SECRET = "testing", "testing"

NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
{listens}
        ssl_certificate {dir}/server.pem;
        ssl_certificate_key {dir}/server.key;
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        location / {{
            proxy_pass http://127.0.0.1:{moto_port};
            proxy_set_header Host $http_host;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
        }}
    }}
}}
"""


def make_certificates(directory: Path, addresses) -> str:
    """A CA and a server certificate for `addresses`; returns the CA's PEM."""
    from cryptography.hazmat.primitives import serialization

    from tests.support.pki import TestCA, common_name

    ca = TestCA("free4allweb test S3 CA")
    # pgBackRest (2.45) matches the host only against DNS names, curl an IP only against IP
    # addresses: each address is given both ways
    cert, key = ca.issue(common_name("s3.test"), dns=["localhost", *addresses], ips=addresses)
    ca_pem = ca.cert.public_bytes(serialization.Encoding.PEM).decode()
    (directory / "ca.pem").write_text(ca_pem)
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca_pem.encode())
    (directory / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(directory / "server.key", 0o600)
    return ca_pem


def address_present(address: str) -> bool:
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=False).stdout
    return f" {address}/" in out


class S3Front:
    def __init__(self, workdir: Path, listen=("127.0.0.1",), port: int | None = None, check_signatures: bool = True):
        for address in listen:
            if not any(ipaddress.ip_address(address) in net for net in ALLOWED):
                raise ValueError(f"{address} is neither the loopback nor the lab's network")
        self.workdir = Path(workdir)
        self.listen = tuple(listen)
        # a port picked here may be taken before nginx binds it (the other test lane's servers pick
        # from an overlapping range): unless one was given, start() picks again and retries
        self._given_port = port is not None
        self.port = port or free_port(15400, 15499)
        self.moto = Moto(self.workdir / "moto.log", region=REGION)
        self.nginx: subprocess.Popen | None = None
        self.ca_pem = ""
        # With check_signatures, moto checks every request's SigV4 signature against an IAM
        # user's key (as AWS does); otherwise any key is accepted.
        self.check_signatures = check_signatures
        self.key, self.secret = KEY, SECRET

    def __enter__(self) -> S3Front:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 30) -> S3Front:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for address in self.listen:
            deadline = time.monotonic() + timeout
            while not address_present(address):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{address} is not an address of this host (is the lab up?)")
                time.sleep(0.5)
        self._start_moto()
        self.ca_pem = make_certificates(self.workdir, self.listen)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.workdir / sub).mkdir(exist_ok=True)
        for _attempt in range(5):
            if not self._given_port:
                self.port = free_port(15400, 15499)
            if self._start_nginx():
                break
            err = (self.workdir / "nginx.stderr").read_text()[-500:]
            if self._given_port or "Address already in use" not in err:
                raise RuntimeError(f"nginx exited: {err}")
        else:
            raise RuntimeError(f"nginx could not bind a free port in 5 attempts: {err}")
        deadline = time.monotonic() + timeout
        while True:
            if self.nginx.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.workdir / 'nginx.stderr').read_text()[-500:]}")
            probe = subprocess.run(
                [
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--cacert",
                    str(self.workdir / "ca.pem"),
                    f"https://{self.listen[0]}:{self.port}/",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.stdout.strip() not in ("", "000"):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the S3 TLS front did not answer")
            time.sleep(0.2)

    def _start_moto(self) -> None:
        if not self.check_signatures:
            self.moto.start()
            return
        # moto lets the first N requests in unauthenticated: exactly the three that make the user
        previous = os.environ.get("INITIAL_NO_AUTH_ACTION_COUNT")
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        try:
            self.moto.start()
        finally:
            if previous is None:
                os.environ.pop("INITIAL_NO_AUTH_ACTION_COUNT")
            else:
                os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = previous
        iam = self.moto.client("iam")
        iam.create_user(UserName="backups")
        iam.attach_user_policy(UserName="backups", PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
        key = iam.create_access_key(UserName="backups")["AccessKey"]
        self.key, self.secret = key["AccessKeyId"], key["SecretAccessKey"]

    def _start_nginx(self) -> bool:
        """Start nginx on self.port; False when it exited at once (within 1 s: a bind error)."""
        listens = "\n".join(f"        listen {a}:{self.port} ssl;" for a in self.listen)
        conf = self.workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.workdir, listens=listens, moto_port=self.moto.port))
        self.nginx = subprocess.Popen(
            ["nginx", "-p", str(self.workdir), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "nginx.stderr").open("wb"),
            start_new_session=True,
        )
        try:
            self.nginx.wait(1.0)
        except subprocess.TimeoutExpired:
            return True
        return False

    def stop(self) -> None:
        if self.nginx and self.nginx.poll() is None:
            self.nginx.terminate()
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
        self.moto.stop()

    @contextlib.contextmanager
    def frozen(self):
        """The endpoint stops answering (nginx and moto SIGSTOPped: connections are accepted by
        the kernel and then nothing comes back, as with a lost network path), and answers again
        afterwards with everything it held."""
        groups = [p.pid for p in (self.nginx, self.moto.proc) if p is not None and p.poll() is None]
        for pgid in groups:
            os.killpg(pgid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pgid in groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGCONT)

    @property
    def ca_file(self) -> str:
        return str(self.workdir / "ca.pem")

    def client(self):
        """boto3 S3 client talking to moto directly (to inspect or corrupt objects)."""
        import boto3

        return boto3.session.Session().client(
            "s3",
            region_name=REGION,
            endpoint_url=self.moto.url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        return name

    def repository(self, bucket: str, address: str = "127.0.0.1", path: str = "/pgbackrest") -> dict:
        """The backup role's repository entry for this endpoint (see roles/backup)."""
        return {
            "type": "s3",
            "endpoint": address,
            "port": self.port,
            "bucket": bucket,
            "region": REGION,
            "key": self.key,
            "secret": self.secret,
            "uri_style": "path",
            "ca_certificate": self.ca_pem,
            "path": path,
        }


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="an S3 endpoint (moto behind nginx TLS) that outlives this command")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--bucket", action="append", default=[])
    args = parser.parse_args(argv)
    if args.action == "up":
        if args.state.exists():
            return 0
        front = S3Front(args.state.parent / (args.state.stem + ".d"), listen=args.listen or ["127.0.0.1"]).start()
        for bucket in args.bucket:
            front.create_bucket(bucket)
        args.state.write_text(
            json.dumps(
                {
                    "pids": [front.nginx.pid, front.moto.proc.pid],
                    "port": front.port,
                    "moto_url": front.moto.url,
                    "ca_pem": front.ca_pem,
                    "key": front.key,
                    "secret": front.secret,
                    "listen": list(front.listen),
                }
            )
        )
        return 0
    if args.state.exists():
        for pid in json.loads(args.state.read_text())["pids"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        args.state.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
