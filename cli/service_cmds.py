"""`avatar-prep serve | worker | keys | db | bench-api | reprocess`: the service's
processes and chores.

Each command builds the one `Settings()` from the environment (AVATAR_PREP_*)
here, at the edge, and passes it in. With no environment at all they run on the
embedded defaults: a SQLite file, the filesystem broker and a storage folder,
all under `var/`.

Heavy modules (uvicorn, Celery, the face models) are imported inside the
command that needs them, so `avatar-prep --help` and `keys` stay quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, get_args

from cli import bench, reprocess_cmd
from service.settings import Plan, Settings

# prometheus_client's own variable for its multiprocess mode.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    serve.add_argument(
        "--workers", type=int, default=1, help="uvicorn processes (default %(default)s)"
    )
    serve.set_defaults(run=_serve)

    worker = sub.add_parser("worker", help="run a Celery worker that prepares uploaded avatars")
    worker.add_argument(
        "-c",
        "--concurrency",
        type=int,
        default=1,
        help="worker processes, each with its own face models (default %(default)s)",
    )
    worker.add_argument(
        "--beat",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the sweeper schedule; exactly one worker of a deployment "
        "should (default: on)",
    )
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(run=_worker)

    keys = sub.add_parser("keys", help="create or revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="create an API key (shown once)")
    create.add_argument("--account", required=True, help="account name; created if new")
    create.add_argument("--plan", required=True, choices=get_args(Plan))
    create.set_defaults(run=_keys_create)
    revoke = keys_sub.add_parser("revoke", help="revoke an API key by its id")
    revoke.add_argument("key_id", help="the key id printed by `keys create`")
    revoke.set_defaults(run=_keys_revoke)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", help="apply the migrations (idempotent)")
    upgrade.set_defaults(run=_db_upgrade)

    bench.register_api(sub)
    reprocess_cmd.register(sub)


def _serve(args: argparse.Namespace) -> int:
    _share_metrics_folder(Settings())
    import uvicorn

    from service.logs import uvicorn_log_config

    # The factory builds Settings() itself in each uvicorn process. The API writes
    # its own JSON line per request (api/observe.py), so uvicorn's access log is off.
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=uvicorn_log_config(),
        access_log=False,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    settings = Settings()
    _share_metrics_folder(settings)
    from tasks.worker import run_worker

    run_worker(settings, concurrency=args.concurrency, beat=args.beat, loglevel=args.loglevel)
    return 0


def _share_metrics_folder(settings: Settings) -> None:
    """Put this process and its children (uvicorn workers, Celery pool processes) in
    prometheus_client's multiprocess mode, with their files in `<data_dir>/metrics`,
    where the API's /metrics sums them (api/metrics.py). prometheus_client reads the
    variable once, when first imported, so this runs before anything imports it. A
    folder the operator chose in PROMETHEUS_MULTIPROC_DIR is kept."""
    folder = Path(os.environ.setdefault(MULTIPROCESS_ENV, str(Path(settings.data_dir) / "metrics")))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROCESS_ENV] = str(folder.resolve())


def _keys_create(args: argparse.Namespace) -> int:
    from service.runtime import Services

    services = Services.create(Settings(), _NoQueue())
    try:
        key_id, plain = services.keys.create(args.account, args.plan)
    finally:
        services.close()
    print(f"key id:  {key_id}")
    print(f"api key: {plain}")
    print("The key is shown only this once; store it now.")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from service.errors import NotFound
    from service.runtime import Services

    services = Services.create(Settings(), _NoQueue())
    try:
        services.keys.revoke(args.key_id)
    except NotFound as exc:
        print(exc.message, file=sys.stderr)
        return 1
    finally:
        services.close()
    print(f"revoked {args.key_id}: requests with it now get 401 auth.invalid_key")
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy import make_url

    from service.registry import upgrade

    settings = Settings()
    upgrade(settings)
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    print(f"database at head: {shown}")
    return 0


class _NoQueue:
    """The work queue of the key commands, which never send work."""

    def send(self, avatar_id: str) -> None:
        raise RuntimeError(f"key commands never enqueue work (asked for {avatar_id})")

    def ping(self) -> bool:
        return False
