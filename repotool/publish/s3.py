"""An S3 (or S3-compatible) destination for ``repo publish``, through boto3.

``s3://BUCKET[/PREFIX]``; ``--endpoint-url`` for S3-compatible servers (MinIO, Ceph,
R2, moto …), addressed path-style (``ENDPOINT/BUCKET/KEY``). Credentials come from
boto3's usual chain: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (and
``AWS_SESSION_TOKEN``), ``AWS_PROFILE`` with ``~/.aws/credentials`` and
``~/.aws/config``, or an instance or container role. boto3 is the optional extra
``repotool[s3]``.

Each object is one PUT (``Content-Type``, ``Cache-Control``, ``Content-MD5`` so a
server drops a body damaged on the way); the listing's ETag of a single-part upload is
the MD5 of its bytes, which lets ``publish`` compare without reading objects back. What
it uploaded it reads back in full and compares with the signed sha256.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from repotool.errors import DownloadError, UsageError, UserError
from repotool.publish.destinations import LocalFile, Remote

__all__ = ["S3Destination", "parse_s3_url"]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ENDPOINT = re.compile(r"^https?://[^/?#\s]+/?$")
_MD5 = re.compile(r'^"?([0-9a-f]{32})"?$')
single_put_max = 5 * 1024**3  # bytes; S3's largest single PUT


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/A/B`` → ``("BUCKET", "A/B/")``; malformed URLs are a usage error."""
    rest = url[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise UsageError(f"invalid destination {url!r}: {bucket!r} is not a bucket name",
                         "expected s3://BUCKET/PREFIX (bucket: 3-63 of a-z 0-9 . -)")
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") or any(ord(c) < 32 for c in p) for p in parts):
        raise UsageError(f"invalid destination {url!r}: unsafe prefix {prefix!r}")
    return bucket, "".join(p + "/" for p in parts)


@contextlib.contextmanager
def _errors(where: str, key: str = "") -> Iterator[None]:
    """boto3's exceptions as one line each: exit 1, never a traceback. ``where`` is the
    destination; ``key`` the object, named where it helps."""
    from botocore import exceptions as bx

    try:
        yield
    except (bx.NoCredentialsError, bx.PartialCredentialsError):
        raise UserError(
            f"no AWS credentials for {where}",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a "
            "profile in ~/.aws/credentials") from None
    except bx.ClientError as e:
        err = e.response.get("Error", {})
        code = str(err.get("Code", "?"))
        if code in ("NoSuchBucket", "404") and "Key" not in err:
            raise UserError(f"{where}: the bucket does not exist",
                            "create it first (or check the bucket name and --endpoint-url)"
                            ) from None
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise UserError(f"{where}: access denied ({code})",
                            "check the credentials and the bucket's policy") from None
        raise UserError(f"{where}{key}: {code}: {err.get('Message', '')}".rstrip(": ")
                        ) from None
    except (bx.EndpointConnectionError, bx.ConnectionError, bx.ConnectTimeoutError,
            bx.ReadTimeoutError) as e:
        raise DownloadError(f"{where}: cannot reach the storage service: {e}",
                            "check --endpoint-url and the network") from None
    except bx.BotoCoreError as e:
        raise UserError(f"{where}{key}: {e}") from None


class S3Destination:
    """``s3://BUCKET/PREFIX`` through one boto3 client (thread-safe)."""

    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None = None) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise UserError("publishing to s3:// needs boto3, which is not installed",
                            "install it with: pip install 'repotool[s3]'") from None
        self.bucket, self.prefix = bucket, prefix
        self.url = f"s3://{bucket}/{prefix}"
        config = Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10, read_timeout=60, max_pool_connections=16,
            # S3-compatible servers answer path-style; AWS itself picks the best style
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            # Content-MD5 protects each body; newer default checksums break some servers
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        with _errors(self.url):
            self._client: Any = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, config=config)

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None) -> S3Destination:
        bucket, prefix = parse_s3_url(url)
        if endpoint_url is not None and not _ENDPOINT.match(endpoint_url):
            raise UsageError(f"invalid --endpoint-url {endpoint_url!r}",
                             "expected http(s)://HOST[:PORT]")
        return cls(bucket, prefix, endpoint_url=endpoint_url)

    def listing(self) -> dict[str, Remote]:
        out: dict[str, Remote] = {}
        with _errors(self.url):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    m = _MD5.match(str(obj.get("ETag", "")))
                    out[obj["Key"][len(self.prefix):]] = Remote(
                        int(obj["Size"]), m.group(1) if m else None)
        return out

    def _get(self, name: str) -> Any | None:
        from botocore import exceptions as bx

        with _errors(self.url, name):
            try:
                return self._client.get_object(Bucket=self.bucket, Key=self.prefix + name)
            except bx.ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise

    def digest(self, name: str, size: int) -> tuple[str, int] | None:
        obj = self._get(name)
        if obj is None:
            return None
        h, n = hashlib.sha256(), 0
        body = obj["Body"]
        with _errors(self.url, name), contextlib.closing(body):
            while n <= size and (chunk := body.read(min(1 << 20, size + 1 - n))):
                h.update(chunk)
                n += len(chunk)
        return h.hexdigest(), n

    def read(self, name: str, limit: int) -> bytes | None:
        obj = self._get(name)
        if obj is None:
            return None
        with _errors(self.url, name), contextlib.closing(obj["Body"]) as body:
            data: bytes = body.read(limit + 1)
        return data

    def put(self, f: LocalFile, content_type: str, cache_control: str) -> None:
        if f.size > single_put_max:
            raise UserError(f"{f.name}: {f.size} bytes is more than one S3 PUT takes")
        md5 = base64.b64encode(bytes.fromhex(f.digests()[1])).decode()
        extra = {"CacheControl": cache_control} if cache_control else {}
        with _errors(self.url, f.name), open(f.path, "rb") as body:
            self._client.put_object(
                Bucket=self.bucket, Key=self.prefix + f.name, Body=body,
                ContentLength=f.size, ContentType=content_type, ContentMD5=md5, **extra)

    def sync(self) -> None:
        """A completed PUT is durable and visible (S3 is read-after-write consistent)."""

    def audit(self, now: datetime) -> list[str] | None:
        return None
