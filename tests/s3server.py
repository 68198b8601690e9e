"""A real S3-compatible server on loopback for tests: moto's standalone ``moto_server``.

    server = MotoServer.start(log_path)     # a subprocess on 127.0.0.1, a free port
    server.endpoint                          # http://127.0.0.1:PORT
    server.make_bucket("name")               # with a public-read policy (GET objects)
    server.bucket_url("name", "prefix")      # http://127.0.0.1:PORT/name/prefix/
    mark = server.mark(); ...; server.requests(mark)   # [(method, path)] from its log
    server.stop()

moto serves path-style URLs (``ENDPOINT/BUCKET/KEY``) and logs every request it
answered (werkzeug's access log) to ``log_path``: that log is the server's own record
of which PUTs arrived, in which order. Credentials are anything (moto checks none);
``aws_env()`` gives an environment that also keeps boto3 away from the network (no
instance-metadata lookups) and from this machine's ~/.aws files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MotoServer", "aws_env"]

_REQUEST = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|PUT|HEAD|POST|DELETE) (\S+) HTTP/1\.[01]')
_RUNNING = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")


def aws_env(tmp: Path, *, credentials: bool = True) -> dict[str, str]:
    env = {
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask 169.254.169.254 for a role
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    if credentials:
        env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return env


@dataclass
class MotoServer:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @classmethod
    def start(cls, log: Path, timeout: float = 30.0) -> MotoServer:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = _RUNNING.search(log.read_text(errors="replace"))
            if m:
                return cls(proc, int(m.group(1)), log)
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        proc.kill()
        raise RuntimeError(f"moto_server did not start:\n{log.read_text(errors='replace')}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bucket_url(self, bucket: str, prefix: str = "") -> str:
        return f"{self.endpoint}/{bucket}/" + (f"{prefix.strip('/')}/" if prefix else "")

    def client(self, tmp: Path) -> Any:
        import boto3
        from botocore.config import Config

        env = aws_env(tmp)
        return boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        ).client("s3", endpoint_url=self.endpoint,
                 config=Config(s3={"addressing_style": "path"}))

    def make_bucket(self, tmp: Path, bucket: str) -> None:
        """A bucket anyone may GET objects from (what a public repository needs)."""
        c = self.client(tmp)
        c.create_bucket(Bucket=bucket)
        c.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                           "Resource": f"arn:aws:s3:::{bucket}/*"}]}))

    def mark(self) -> int:
        return self.log.stat().st_size

    def requests(self, since: int = 0) -> list[tuple[str, str]]:
        """(method, unquoted path) of every request answered since ``mark()``."""
        with open(self.log, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        return [(m.group(1), urllib.parse.unquote(m.group(2).split("?")[0]))
                for m in _REQUEST.finditer(text)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
