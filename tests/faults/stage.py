"""Set the stage in a throwaway database, in a process of its own pointed at it.

    python -m tests.faults.stage seed [--agents N] [--sessions]
    python -m tests.faults.stage reply --external-id ID --text TEXT [--agent N]
    python -m tests.faults.stage resend --message-id ID
    python -m tests.faults.stage retry --message-id ID [--agent N]

``seed`` makes a department (or ``--departments N``), one channel per platform (with the secrets' variable
names of ``tests.faults.traffic``), their service promises, and ``N`` agents who can
sign in (``--sessions``: each already signed in, its session key printed). ``reply``
answers, as an agent would, the case holding the customer message ``ID`` (a queued
reply, sent by a worker after commit). ``resend`` queues the send task of a message
again, as a redelivered task would; ``retry`` is an agent's "send again" on a failed
reply. Each prints what it did as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import import_module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    seed = commands.add_parser("seed")
    seed.add_argument("--agents", type=int, default=1)
    seed.add_argument("--password", default="faults-pw-1")
    seed.add_argument("--sessions", action="store_true", help="Sign each agent in: print a session key.")
    seed.add_argument(
        "--departments", type=int, default=1, help="Spread channels and agents over this many departments."
    )
    reply = commands.add_parser("reply")
    reply.add_argument("--external-id", required=True)
    reply.add_argument("--text", required=True)
    reply.add_argument("--agent", type=int, default=0)
    resend = commands.add_parser("resend")
    resend.add_argument("--message-id", type=int, required=True)
    retry = commands.add_parser("retry")
    retry.add_argument("--message-id", type=int, required=True)
    retry.add_argument("--agent", type=int, default=0)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    if args.command == "reply":
        result = _reply(args)
    elif args.command == "resend":
        from connectors.outbound import send_message

        send_message.delay(args.message_id)
        result = {"queued": args.message_id}
    elif args.command == "retry":
        from django.contrib.auth import get_user_model

        from cases.models import Message
        from connectors.outbound import message_retry_send

        agent = get_user_model().objects.get(username=f"agent{args.agent}")
        message_retry_send(message=Message.objects.get(pk=args.message_id), actor=agent)
        result = {"retried": args.message_id}
    else:
        result = _seed(args)
    json.dump(result, sys.stdout)
    return 0


def _seed(args) -> dict:
    from django.contrib.auth import get_user_model

    from cases.models import Department, Membership, ServicePromise
    from connectors.models import Channel
    from tests.faults.traffic import CHANNELS

    departments = [Department.objects.get_or_create(slug="care", defaults={"name": "Customer Care"})[0]]
    for index in range(1, max(getattr(args, "departments", 1), 1)):
        departments.append(
            Department.objects.get_or_create(
                slug=f"care-{index}", defaults={"name": f"Customer Care {index}"}
            )[0]
        )
    department = departments[0]
    channels = {}
    for position, (kind, (slug, account, roles)) in enumerate(CHANNELS.items()):
        channel, _ = Channel.objects.update_or_create(
            slug=slug,
            defaults={
                "kind": kind,
                "name": f"Faults {kind}",
                "department": departments[position % len(departments)],
                "account_id": account,
                "secret_env": dict(roles),
            },
        )
        ServicePromise.objects.get_or_create(
            channel=channel,
            defaults={
                "first_response_minutes": 60,
                "next_response_minutes": 60,
                "resolution_minutes": 24 * 60,
            },
        )
        channels[kind] = {"id": channel.pk, "slug": slug, "department": channel.department_id}
    User = get_user_model()
    agents = []
    for index in range(getattr(args, "agents", 1)):
        email = f"agent{index}@faults.test"
        user, created = User.objects.get_or_create(
            username=f"agent{index}",
            defaults={"email": email, "first_name": "Agent", "last_name": str(index)},
        )
        if created:
            user.set_password(getattr(args, "password", "faults-pw-1"))
            user.save()
        home = departments[index % len(departments)]
        Membership.objects.get_or_create(user=user, department=home, defaults={"role": Membership.Role.AGENT})
        agent = {"id": user.pk, "email": email, "department": home.pk}
        if getattr(args, "sessions", False):
            agent["session"] = _session_for(user)
        agents.append(agent)
    return {
        "department": department.pk,
        "departments": [d.pk for d in departments],
        "channels": channels,
        "agents": agents,
    }


def _reply(args) -> dict:
    from django.contrib.auth import get_user_model

    from cases import services
    from cases.models import Message

    inbound = Message.objects.select_related("case", "channel").get(external_id=args.external_id)
    agent = get_user_model().objects.get(username=f"agent{args.agent}")
    reply = services.case_reply(
        case=inbound.case,
        author=agent,
        channel=inbound.channel,
        text=args.text,
        is_public=inbound.is_public,
    )
    return {"message": reply.pk, "case": inbound.case_id}


def _session_for(user) -> str:
    """A signed-in session, as the login view would leave it (no login form, no rate limit)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key


if __name__ == "__main__":
    raise SystemExit(main())
