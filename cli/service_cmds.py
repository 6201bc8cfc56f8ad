"""`avatar-prep serve | worker | keys | accounts | db | bench-api | reprocess`: the
service's processes and chores.

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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args

from cli import bench, reprocess_cmd
from pipeline.errors import AvatarPrepError
from service.settings import Plan, Settings

if TYPE_CHECKING:
    from service.keys import KeyInfo, KeyService

T = TypeVar("T")

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
    worker.add_argument(
        "--loglevel",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the least important log lines shown (default %(default)s)",
    )
    worker.set_defaults(run=_worker)

    keys = sub.add_parser("keys", help="create, list or revoke API keys")
    keys_sub = keys.add_subparsers(
        dest="keys_command", required=True, metavar="ACTION", help="create, list or revoke"
    )
    create = keys_sub.add_parser("create", help="create an API key (shown once)")
    create.add_argument("--account", required=True, help="account name; created if new")
    create.add_argument(
        "--plan",
        choices=get_args(Plan),
        help="a new account's plan (its limits); an existing account keeps its own",
    )
    create.set_defaults(run=_keys_create)
    listed = keys_sub.add_parser("list", help="list keys: ids, accounts, plans, never secrets")
    listed.add_argument("--account", help="only this account's keys")
    listed.set_defaults(run=_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke an API key by its id or the key itself")
    revoke.add_argument(
        "key_id", metavar="KEY", help="the key id (key_...) or the key (ak_live_...)"
    )
    revoke.set_defaults(run=_keys_revoke)

    accounts = sub.add_parser("accounts", help="change an account's plan")
    accounts_sub = accounts.add_subparsers(
        dest="accounts_command", required=True, metavar="ACTION", help="what to change"
    )
    set_plan = accounts_sub.add_parser("set-plan", help="move an account to another plan")
    set_plan.add_argument("account", help="the account's name")
    set_plan.add_argument("plan", choices=get_args(Plan), help="its new plan")
    set_plan.set_defaults(run=_accounts_set_plan)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(
        dest="db_command", required=True, metavar="ACTION", help="what to do with the schema"
    )
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
    return _on_keys(lambda keys: keys.create(args.account, args.plan), _print_created)


def _print_created(created: tuple[str, str]) -> None:
    key_id, plain = created
    print(f"key id:  {key_id}")
    print(f"api key: {plain}")
    print("The key is shown only this once; store it now.")


def _keys_list(args: argparse.Namespace) -> int:
    return _on_keys(lambda keys: keys.list_keys(args.account), _print_keys)


def _print_keys(keys: list[KeyInfo]) -> None:
    print(f"{'key id':32}  {'account':20}  {'plan':5}  {'created':20}  revoked")
    for key in keys:
        revoked = key.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if key.revoked_at else "-"
        created = key.created_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{key.id:32}  {key.account:20}  {key.plan:5}  {created:20}  {revoked}")


def _keys_revoke(args: argparse.Namespace) -> int:
    return _on_keys(
        lambda keys: keys.revoke(args.key_id),
        lambda key_id: print(f"revoked {key_id}: requests with it now get 401 auth.invalid_key"),
    )


def _accounts_set_plan(args: argparse.Namespace) -> int:
    return _on_keys(
        lambda keys: keys.set_plan(args.account, args.plan),
        lambda before: print(f"account {args.account}: {before} -> {args.plan}"),
    )


def _on_keys(action: Callable[[KeyService], T], report: Callable[[T], None]) -> int:
    """`action` on the registry's KeyService, then `report` of what it returned
    (once the registry is closed): exit status 0; 1, with the error printed and
    nothing reported, when it refuses."""
    from service.runtime import Services

    services = Services.create(Settings(), NoQueue())
    try:
        done = action(services.keys)
    except AvatarPrepError as exc:
        print(f"avatar-prep: {exc.message}", file=sys.stderr)
        return 1
    finally:
        services.close()
    report(done)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy import make_url

    from service.registry import upgrade

    settings = Settings()
    upgrade(settings)
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    print(f"database at head: {shown}")
    return 0


class NoQueue:
    """The work queue of the key commands, which never send work."""

    def send(self, avatar_id: str) -> None:
        raise RuntimeError(f"key commands never enqueue work (asked for {avatar_id})")

    def ping(self) -> bool:
        return False
