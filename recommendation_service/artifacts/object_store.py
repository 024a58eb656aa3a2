"""Model files in S3-compatible object storage, for servers on hosts without a shared disk.

``--model-store s3://bucket/prefix`` mirrors a model directory's published state under that
prefix, with the same relative paths::

    versions/v00000007/<every file>   uploaded first, manifest.json last
    CURRENT                          then replaced: the version servers should serve
    PINNED, catalog.npz, builder_status.json, builder_history.json, experiments.json

A version is complete once its manifest is there (the manifest, uploaded last, names every
file with its SHA-256, which every reader checks), and visible once ``CURRENT`` names it.
Update files between refits are not mirrored: across hosts they travel through Kafka.

The client is boto3, configured the standard way: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` (or any other source boto3 reads).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

#: Small files copied whenever they change, besides the versions and CURRENT.
SIDE_FILES = (
    "PINNED",
    "catalog.npz",
    "builder_status.json",
    "builder_history.json",
    "experiments.json",
)


class StoreUnreachable(Exception):
    """The object store did not answer (network, credentials, missing bucket)."""


class StoreConflict(Exception):
    """A conditional write was refused: the object changed since it was read (another builder
    wrote it), or exists where it must not."""


@dataclass(frozen=True)
class StoreLocation:
    """``s3://bucket/prefix`` parsed."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> StoreLocation:
        """Raises ConfigError unless ``url`` is ``s3://bucket[/prefix]``."""
        m = re.fullmatch(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?", url.strip())
        if m is None:
            raise ConfigError(f"--model-store must be s3://bucket/prefix, not {url!r}")
        return cls(m.group(1), (m.group(2) or "").strip("/"))

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class ObjectStore:
    """Relative-path reads and writes under one location (boto3 underneath).

    Every method raises :class:`StoreUnreachable` when the store cannot be reached.
    """

    def __init__(self, location: StoreLocation, client=None, timeout: float = 5.0) -> None:
        self.location = location
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                config=Config(
                    connect_timeout=timeout,
                    read_timeout=timeout,
                    retries={"max_attempts": 2},
                    s3={"addressing_style": "path"},
                ),
            )
        self.client = client

    def _call(self, method: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(Bucket=self.location.bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise StoreConflict(f"{self.location}: {kwargs.get('Key')}: {code}") from exc
            raise StoreUnreachable(f"{self.location}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnreachable(f"{self.location}: {exc}") from exc

    def get(self, relative: str) -> bytes | None:
        """The object's bytes, or None when there is none."""
        answer = self._call("get_object", Key=self.location.key(relative))
        return None if answer is None else answer["Body"].read()

    def get_with_etag(self, relative: str) -> tuple[bytes | None, str | None]:
        """The object's bytes and ETag (the ETag a conditional :meth:`put` names), or Nones."""
        answer = self._call("get_object", Key=self.location.key(relative))
        return (None, None) if answer is None else (answer["Body"].read(), answer["ETag"])

    def etag(self, relative: str) -> str | None:
        answer = self._call("head_object", Key=self.location.key(relative))
        return None if answer is None else answer["ETag"]

    def put(
        self, relative: str, data: bytes, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        """Write the object; returns its new ETag.

        With ``if_match`` the store writes only while the object still has that ETag, with
        ``if_absent`` only when there is none (S3 conditional writes; SeaweedFS has them too).

        Raises
        ------
        StoreConflict
            If the condition did not hold.
        """
        extra = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"} if if_absent else {}
        answer = self._call("put_object", Key=self.location.key(relative), Body=data, **extra)
        return None if answer is None else answer.get("ETag")

    def delete(self, relatives: list[str]) -> None:
        for start in range(0, len(relatives), 1000):
            objects = [{"Key": self.location.key(r)} for r in relatives[start : start + 1000]]
            self._call("delete_objects", Delete={"Objects": objects, "Quiet": True})

    def list(self, relative_prefix: str) -> list[str]:
        """Relative paths of the objects under ``relative_prefix``."""
        base = self.location.key(relative_prefix)
        strip = len(self.location.key(""))
        out, token = [], None
        while True:
            kwargs = {"Prefix": base, **({"ContinuationToken": token} if token else {})}
            answer = self._call("list_objects_v2", **kwargs) or {}
            out += [item["Key"][strip:] for item in answer.get("Contents", [])]
            if not answer.get("IsTruncated"):
                return out
            token = answer["NextContinuationToken"]
