"""The one settings object of the service, API and workers.

Built at the edges (`Settings()` in the CLI, the FastAPI app factory, the
Celery app) and passed in; there is no module-level instance. Every field reads
`AVATAR_PREP_<FIELD>` from the environment, nested ones with `__`
(`AVATAR_PREP_PIPELINE__OUTPUT_SIZE=640`). The defaults need no servers: a
SQLite file, Celery's filesystem transport and a local storage directory, all
under `var/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.settings import PipelineSettings

Plan = Literal["free", "paid"]


class Settings(BaseSettings):
    """Everything a service process needs to know. Frozen: pass it, never patch it."""

    model_config = SettingsConfigDict(
        env_prefix="AVATAR_PREP_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)

    # --- where the embedded defaults keep their files ---
    data_dir: Path = Field(
        Path("var"), description="Root of the embedded defaults' files (broker folders)."
    )

    # --- registry ---
    database_url: str = Field(
        "sqlite:///var/avatar-prep.db",
        description="SQLAlchemy URL; PostgreSQL in production (postgresql+psycopg://...).",
    )
    database_connect_timeout_seconds: float = Field(
        3.0, gt=0, description="A database that does not answer in this time is down."
    )
    database_idle_transaction_seconds: float = Field(
        10.0,
        gt=0,
        description="PostgreSQL ends a session of ours that sits this long inside a "
        "transaction without a command. Ours take milliseconds; one left open is a client "
        "whose host died mid-transaction (no reset reaches the server), and its row locks "
        "would otherwise block the sweep and every retry of that avatar until the "
        "server's TCP keepalive notices, hours later. Matches worker_lost_after_seconds.",
    )

    # --- broker ---
    broker_url: str = Field(
        "filesystem://",
        description="Celery broker: Redis (redis://host:6379/0), RabbitMQ "
        "(amqp://user:password@host:5672/vhost), or filesystem:// for one machine, which "
        "keeps its folders under data_dir.",
    )

    # --- storage ---
    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path = Field(Path("var/storage"), description="Root of the local storage backend.")
    s3_endpoint_url: str | None = Field(
        None, description="S3 API endpoint; None means AWS's own for s3_region."
    )
    s3_bucket: str = "avatars"
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_presign_seconds: int = Field(
        300, gt=0, le=604_800, description="Life of a presigned GET URL for an image."
    )
    url_signing_secret: SecretStr | None = Field(
        None,
        description="Secret for the signed image URLs the API serves itself (the page's "
        "<img src>). Unset: a random one kept in data_dir, shared by this machine's "
        "processes; set it when several hosts serve the API.",
    )
    signed_url_seconds: int = Field(
        300, gt=0, le=86_400, description="Life of a signed image URL the API serves itself."
    )
    s3_connect_timeout_seconds: float = Field(
        3.0, gt=0, description="An S3 endpoint not accepting a connection in this time is down."
    )
    s3_read_timeout_seconds: float = Field(
        10.0, gt=0, description="Longest wait for S3 to send data; a 20 MB original fits easily."
    )
    s3_max_attempts: int = Field(
        3, ge=1, description="boto3 tries per call (standard retry mode, with backoff)."
    )
    s3_max_concurrency: int = Field(
        4,
        ge=1,
        le=10,
        description="Objects one process writes to S3 at once (an avatar's three renditions "
        "and record go out together); at most boto3's connection pool (10).",
    )

    # --- URL images (fetched by the API before the avatar is made; service/fetch.py) ---
    allow_loopback_urls: bool = Field(
        False, description="Allow image URLs on 127.0.0.0/8 and ::1. For tests only."
    )
    fetch_connect_timeout_seconds: float = Field(3.0, gt=0)
    fetch_total_timeout_seconds: float = Field(
        10.0, gt=0, description="Whole download, redirects included."
    )
    fetch_max_redirects: int = Field(3, ge=0)

    # --- work queue ---
    task_max_retries: int = Field(
        5, ge=0, description="Retries of a transient failure (storage, database, fetch)."
    )
    max_process_attempts: int = Field(
        10,
        ge=1,
        description="Starts of one avatar's processing (retries and redeliveries after a "
        "worker died) after which it fails with processing.crashed instead of looping.",
    )
    sweep_interval_seconds: float = Field(
        5.0,
        gt=0,
        description="How often the sweeper looks for avatars to send again (refused by the "
        "broker, or held by a worker that is gone): it bounds how long they wait beyond "
        "worker_lost_after_seconds. A sweep is a few indexed reads.",
    )
    worker_heartbeat_seconds: float = Field(
        2.0,
        gt=0,
        description="How often each worker process writes its heartbeat to the registry "
        "(one small UPDATE per process).",
    )
    worker_lost_after_seconds: float = Field(
        10.0,
        gt=0,
        description="A worker process whose heartbeat is this old is gone (killed, its host "
        "lost or cut off): the sweeper sends the avatars it was processing again. Five "
        "missed beats, so a database pause of a few seconds is not taken for a loss (and "
        "if it were, the avatar would only be processed twice, idempotently).",
    )
    ready_without_workers_seconds: float = Field(
        60.0,
        gt=0,
        description="/readyz says not ready when no worker process has beaten for this "
        "long (counted from the API's start when none ever has): uploads would only queue. "
        "A worker restart or a rolling deploy takes seconds, so a minute is no false alarm.",
    )
    stuck_after_seconds: float = Field(
        300.0,
        gt=0,
        description="An avatar queued or processing this long without progress is "
        "re-enqueued; far above the pipeline's time for one image. The fallback for what "
        "heartbeats do not cover: a message lost in the broker, an avatar claimed by a "
        "process without a heartbeat.",
    )
    max_queue_depth: int = Field(
        1000,
        ge=1,
        description="Unfinished avatars (queued or processing) above which new uploads "
        "get 503 at_capacity instead of piling up.",
    )

    # --- browsers ---
    cors_allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins (https://app.example.com) whose pages may call the API from a "
        "browser (CORS). None by default: the API's own page at / needs none.",
    )

    # --- per-key rate limits (per plan; service/ratelimit.py) ---
    rate_limit_window_seconds: float = Field(
        60.0, gt=0, description="The window of the per-key rate limits below."
    )
    rate_limit_requests_free: int = Field(
        120,
        ge=1,
        description="Requests per window for a key of a free account: the sustained rate "
        "and the largest burst. More get 429 rate_limited with Retry-After.",
    )
    rate_limit_requests_paid: int = Field(
        3000, ge=1, description="Requests per window for a key of a paid account."
    )
    rate_limit_redis_url: str | None = Field(
        None,
        description="Redis holding the buckets, shared by every API process (whatever the "
        "broker is). None: the broker's URL when the broker is Redis, else each API process "
        "keeps its own buckets (the limit then multiplies by the number of processes).",
    )

    # --- finish notifications (service/notify.py) ---
    notify_backend: Literal["auto", "redis", "postgres", "poll"] = Field(
        "auto",
        description="How a waiter (wait=, inline sessions) learns an avatar finished. auto: "
        "Redis pub/sub when there is a Redis (rate_limit_redis_url or a Redis broker), else "
        "PostgreSQL LISTEN/NOTIFY when it is the registry, else polling.",
    )
    notify_fallback_seconds: float = Field(
        1.0,
        gt=0,
        le=30,
        description="While notifications are connected, a waiter still re-reads the avatar "
        "this often: what a lost notification costs at most.",
    )

    # --- sessions (per plan) ---
    session_max_seconds_free: int = Field(
        600, gt=0, description="Longest session on the free plan: expires_at = start + this."
    )
    session_max_seconds_paid: int = Field(
        3600, gt=0, description="Longest session on the paid plan: expires_at = start + this."
    )
    validate_wait_seconds: float = Field(
        10.0,
        gt=0,
        le=60,
        description="How long POST /v1/avatars/validate waits for this API process's one "
        "validation slot (the face models run one image at a time) before answering 503.",
    )
    session_inline_wait_seconds: float = Field(
        30.0,
        gt=0,
        le=120,
        description="How long POST /v1/sessions waits for an image sent inline (URL or "
        "base64) to be prepared before answering 409 avatar.not_ready with its avatar_id.",
    )

    # --- webhooks (service/webhooks.py) ---
    webhook_max_endpoints: int = Field(
        16, ge=1, description="Webhook endpoints one account may register."
    )
    webhook_max_attempts: int = Field(
        8,
        ge=1,
        description="Attempts of one delivery (the first included) before it is given up "
        "(status exhausted).",
    )
    webhook_backoff_seconds: float = Field(
        30.0,
        gt=0,
        description="Wait before the first retry of a failed delivery; each further retry "
        "waits twice as long (30 s, 1 min, 2 min, ... about 1 h 4 min in all by default).",
    )
    webhook_backoff_max_seconds: float = Field(
        4 * 3600.0, gt=0, description="Longest wait between two attempts of a delivery."
    )
    webhook_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="One attempt, connect to answer; a receiver must answer 2xx within it.",
    )
    webhook_dispatch_interval_seconds: float = Field(
        5.0,
        gt=0,
        description="How often the worker's beat sends deliveries that are due (retries, "
        "and any whose hand-off after commit was lost) and ends expired sessions.",
    )

    webhook_retention_seconds: int = Field(
        30 * 86_400,
        gt=0,
        description="Events and their delivery records older than this are deleted by "
        "the sweeper; far beyond the last retry of a delivery.",
    )

    # --- idempotency (service/idempotency.py) ---
    idempotency_ttl_seconds: int = Field(
        86_400, gt=0, description="How long an Idempotency-Key and its response are kept."
    )
    idempotency_wait_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a repeat of a request still running waits for its answer "
        "before 409 idempotency.in_progress; above the longest request (wait=30, the "
        "inline session wait).",
    )
    idempotency_stale_seconds: float = Field(
        300.0,
        gt=0,
        description="A key still in progress this long belongs to a request whose process "
        "died; the next repeat runs the request again.",
    )

    def session_max_seconds(self, plan: Plan) -> int:
        """The maximum session length of `plan`, in seconds."""
        return self.session_max_seconds_paid if plan == "paid" else self.session_max_seconds_free
