"""`avatar-prep webhooks add | list | remove --account NAME`: an operator's way to the
webhook endpoints of an account (the API's /v1/webhook_endpoints, by account name
instead of a key). The same rules apply: the URL must pass the image URL rules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cli.service_cmds import NoQueue
from service.settings import Settings
from service.webhooks import EventType

if TYPE_CHECKING:
    from service.runtime import Services


def register(sub: Any) -> None:
    webhooks = sub.add_parser("webhooks", help="register, list or remove webhook endpoints")
    actions = webhooks.add_subparsers(
        dest="webhooks_command", required=True, metavar="ACTION", help="add, list or remove"
    )
    add = actions.add_parser("add", help="register an endpoint (prints its secret once)")
    add.add_argument("--account", required=True, help="account name")
    add.add_argument("--url", required=True, help="where events are POSTed")
    add.add_argument(
        "--event",
        action="append",
        choices=[str(t) for t in EventType],
        help="an event type to receive (repeat for several; default: all)",
    )
    add.add_argument("--description", help="a note for people: what the endpoint is for")
    add.set_defaults(run=_add)
    listing = actions.add_parser("list", help="list an account's endpoints")
    listing.add_argument("--account", required=True, help="account name")
    listing.set_defaults(run=_list)
    remove = actions.add_parser("remove", help="remove an endpoint")
    remove.add_argument("--account", required=True, help="account name")
    remove.add_argument("endpoint_id", help="the whep_ id printed by add or list")
    remove.set_defaults(run=_remove)


def _add(args: argparse.Namespace) -> int:
    def run(services: Services, account_id: str) -> None:
        endpoint = services.webhooks.create_endpoint(
            account_id, args.url, events=args.event, description=args.description
        )
        print(f"endpoint id: {endpoint.id}")
        print(f"url:         {endpoint.url}")
        print(f"events:      {', '.join(endpoint.events)}")
        print(f"secret:      {endpoint.secret}")
        print("The secret is shown only this once; the receiver needs it to verify signatures.")

    return _with_account(args.account, run)


def _list(args: argparse.Namespace) -> int:
    def run(services: Services, account_id: str) -> None:
        endpoints = services.webhooks.list_endpoints(account_id)
        for e in endpoints:
            print(f"{e.id}  {e.url}  {','.join(e.events)}  {e.description or ''}")
        if not endpoints:
            print(f"no webhook endpoints for {args.account}")

    return _with_account(args.account, run)


def _remove(args: argparse.Namespace) -> int:
    def run(services: Services, account_id: str) -> None:
        services.webhooks.delete_endpoint(account_id, args.endpoint_id)
        print(f"removed {args.endpoint_id}: nothing more is sent to it")

    return _with_account(args.account, run)


def _with_account(name: str, run: Callable[[Services, str], None]) -> int:
    """Run `run(services, account_id)` for the account `name`; 1 with the message
    on stderr when the service refuses (unknown account or endpoint, a bad URL)."""
    from pipeline.errors import AvatarPrepError
    from service.runtime import Services

    services = Services.create(Settings(), NoQueue())
    try:
        run(services, services.webhooks.account_id(name))
    except AvatarPrepError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        services.close()
    return 0
