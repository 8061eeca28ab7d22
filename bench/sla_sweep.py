#!/usr/bin/env python
"""Benchmark: one SLA sweep over 100,000 open cases on PostgreSQL (target: under 2 seconds).

Creates a throwaway database ``caseline_bench_sla`` on the local server, migrates it,
loads customers and 100,000 running cases with COPY, and times ``cases.sla.sla_sweep``
in two scenarios:

- ``steady``: the previous sweep ran a minute ago (what beat does all day);
- ``catch-up``: the previous sweep ran 15 minutes ago (a worker restart);
- ``outage``: the previous sweep ran an hour ago.

Case clocks: 45% owe a social first response (60 min; ages exponential, mean 20 min),
55% run a 24-hour resolution clock (ages exponential, mean 6 h); states are what a
sweep at the previous run left: about 3% breached and 4% at risk. One department (Billing, a tenth of the cases) has a
breach path, so the breach ladder runs too. Before each sweep the candidate queries are
EXPLAINed (ANALYZE) to show which index serves them. Figures go to stdout and to
``bench/results/sla_sweep-<time>.json``; the database is dropped unless ``--keep``.

    .venv/bin/python bench/sla_sweep.py
    .venv/bin/python bench/sla_sweep.py --cases 20000 --keep
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
THROWAWAY = "caseline_bench_sla"
SCENARIOS = {"steady": 1, "catch-up": 15, "outage": 60}
INDEXES = ("case_sla_risk_sweep_idx", "case_sla_breach_sweep_idx", "case_sla_ladder_idx")

CASE_COLUMNS = (
    "reference", "customer_id", "department_id", "assignee_id", "status", "priority", "category",
    "subject", "origin_channel_id", "last_channel_id", "handoff_note", "created_at", "updated_at",
    "first_inbound_at", "last_inbound_at", "first_responded_at", "first_response_due_at",
    "resolution_due_at", "due_at", "at_risk_at", "response_risk_at", "resolution_risk_at",
    "sla_state", "breach_step",
)  # fmt: skip


def _admin(server_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql)


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ.setdefault("CHANNEL_LAYER_PREFIX", "cl-bench-sla")
    os.environ["DEBUG"] = "false"  # no query log growing in memory
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _fixtures():
    """Departments, channels with promises, agents, and the breach path of one department."""
    from django.contrib.auth import get_user_model

    from cases.models import BusinessCalendar, Department, EscalationPath, Membership, ServicePromise
    from connectors.models import Channel

    names = ["Social Care", "Customer Service", "Technical Support", "Billing"]
    departments = [Department.objects.create(name=n, slug=n.lower().replace(" ", "-")) for n in names]
    social, service, _tech, billing = departments
    office = BusinessCalendar.objects.create(
        name="Office", time_zone="Europe/London", holiday_country="GB-ENG",
        weekly_hours={str(d): [["09:00", "17:00"]] for d in range(1, 6)},
    )  # fmt: skip
    channels = []
    for kind, slug in (("x", "brand-x"), ("facebook", "brand-fb"), ("email", "support-mail")):
        channel = Channel.objects.create(kind=kind, name=slug, slug=slug, department=social)
        ServicePromise.objects.create(channel=channel, calendar=office if kind == "email" else None)
        channels.append(channel)
    User = get_user_model()
    agents = []
    for i, department in enumerate(departments * 10):
        user = User.objects.create(username=f"bench-agent-{i}", email=f"bench-agent-{i}@example.test")
        Membership.objects.create(user=user, department=department)
        agents.append((user.pk, department.pk))
    for department in departments:
        supervisor = User.objects.create(username=f"bench-super-{department.slug}")
        Membership.objects.create(user=supervisor, department=department, role=Membership.Role.SUPERVISOR)
    EscalationPath.objects.create(
        from_department=billing, to_department=service, trigger=EscalationPath.Trigger.SLA_BREACH,
        warn_after_minutes=0, notify_after_minutes=15, escalate_after_minutes=30,
    )  # fmt: skip
    return departments, channels, agents


def _load(cases: int, *, now: datetime, gap: int, seed: int, fixtures) -> dict[str, int]:
    """COPY customers and ``cases`` running cases in the state a sweep ``gap`` minutes ago left."""
    from django.db import connection

    departments, channels, agents = fixtures
    rng = random.Random(seed)
    previous = now - timedelta(minutes=gap)
    weights = [0.35, 0.3, 0.25, 0.1]  # Social Care, Customer Service, Technical Support, Billing
    customers = max(cases // 5, 1)
    shares: dict[str, int] = {"ok": 0, "at_risk": 0, "breached": 0}
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE cases_caseevent, cases_case, customers_customer RESTART IDENTITY CASCADE")
        raw = cursor.cursor
        with raw.copy(
            "COPY customers_customer (name, tier, notes, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(customers):
                copy.write_row((f"Customer {i}", "vip" if i % 50 == 0 else "standard", "", now, now))
        first_customer = raw.execute("SELECT min(id) FROM customers_customer").fetchone()[0]
        with raw.copy(f"COPY cases_case ({', '.join(CASE_COLUMNS)}) FROM STDIN") as copy:
            for i in range(cases):
                department = rng.choices(departments, weights)[0]
                channel = rng.choice(channels)
                team = [pk for pk, dept in agents if dept == department.pk]
                assignee = rng.choice(team) if rng.random() < 0.7 else None
                responded = None
                # Ages are exponential: most open cases are young, a few are late.
                if rng.random() < 0.45:  # a first response owed on a 60-minute promise
                    start = now - timedelta(minutes=min(rng.expovariate(1 / 20), 120))
                    due, risk = start + timedelta(minutes=60), start + timedelta(minutes=45)
                    first_due, first_risk, resolution_due, resolution_risk = due, risk, None, None
                else:  # answered; the 24-hour resolution clock runs
                    start = now - timedelta(hours=min(rng.expovariate(1 / 6), 30))
                    due, risk = start + timedelta(hours=24), start + timedelta(hours=18)
                    first_due, first_risk, resolution_due, resolution_risk = None, None, due, risk
                    responded = start + timedelta(minutes=20)
                state = "breached" if due <= previous else "at_risk" if risk <= previous else "ok"
                shares[state] += 1
                step = 0
                if state == "breached":  # how far earlier sweeps took the ladder
                    late = (previous - due).total_seconds() / 60
                    step = 3 if late >= 30 else 2 if late >= 15 else 1
                copy.write_row(
                    (
                        f"B-{i:07d}", first_customer + i % customers, department.pk, assignee, "open",
                        "normal", "", "", channel.pk, channel.pk, "", start, start,
                        start, start, responded, first_due, resolution_due, due, risk, first_risk,
                        resolution_risk, state, step,
                    )
                )  # fmt: skip
        cursor.execute("ANALYZE customers_customer")
        cursor.execute("ANALYZE cases_case")
    return shares


def _explain(now: datetime, department_id: int) -> dict[str, dict]:
    from cases import escalation, sla
    from cases.models import Case

    queries = {
        "at risk": sla.at_risk_candidates(now).order_by(),
        "breached": sla.breach_candidates(now).order_by(),
        "ladder": escalation.ladder_candidates(
            department_id, below=Case.BreachStep.SUPERVISORS_NOTIFIED, due_by=now - timedelta(minutes=15)
        ).order_by(),
    }
    plans = {}
    for name, queryset in queries.items():
        plan = queryset.only("id").explain(analyze=True, buffers=True)
        used = [index for index in INDEXES if index in plan]
        plans[name] = {"indexes": used, "seq_scan": "Seq Scan" in plan, "plan": plan.splitlines()}
    return plans


def _run(args) -> dict:
    from django.db.models import Count

    from cases import sla
    from cases.models import Case, CaseEvent

    now = datetime.now(UTC).replace(microsecond=0)
    fixtures = _fixtures()
    billing = fixtures[0][3]
    report = {"cases": args.cases, "scenarios": {}}
    for name, gap in SCENARIOS.items():
        load_started = time.perf_counter()
        before = _load(args.cases, now=now, gap=gap, seed=args.seed, fixtures=fixtures)
        load_seconds = time.perf_counter() - load_started
        plans = _explain(now, billing.pk)
        events_before = CaseEvent.objects.count()
        started = time.perf_counter()
        result = sla.sla_sweep(now=now)
        total = time.perf_counter() - started
        report["scenarios"][name] = {
            "gap_minutes": gap,
            "load_seconds": round(load_seconds, 2),
            "states_before": before,
            "marked_at_risk": result.at_risk,
            "marked_breached": result.breached,
            "ladder": result.ladder,
            "events_written": CaseEvent.objects.count() - events_before,
            "mark_seconds": round(result.mark_seconds, 3),
            "ladder_seconds": round(result.ladder_seconds, 3),
            "sweep_seconds": round(total, 3),
            "states_after": dict(Case.objects.values_list("sla_state").order_by().annotate(n=Count("id"))),
            "explain": plans,
        }
        again = time.perf_counter()
        repeat = sla.sla_sweep(now=now)
        report["scenarios"][name]["repeat_sweep_seconds"] = round(time.perf_counter() - again, 3)
        report["scenarios"][name]["repeat_changes"] = repeat.at_risk + repeat.breached
    return report


def _print(report: dict) -> None:
    print(f"SLA sweep over {report['cases']:,} open cases ({report['machine']})")
    for name, s in report["scenarios"].items():
        print(f"\n[{name}] previous sweep {s['gap_minutes']} min ago; states before: {s['states_before']}")
        print(
            f"  marked at risk {s['marked_at_risk']:,}, breached {s['marked_breached']:,}, ladder {s['ladder']}"
        )
        print(f"  events written {s['events_written']:,}")
        print(
            f"  sweep {s['sweep_seconds']:.3f} s (marking {s['mark_seconds']:.3f} s, ladder {s['ladder_seconds']:.3f} s);"
            f" an immediate second sweep {s['repeat_sweep_seconds']:.3f} s with {s['repeat_changes']} changes"
        )
        for query, plan in s["explain"].items():
            scan = "SEQ SCAN" if plan["seq_scan"] else "no seq scan"
            print(f"  EXPLAIN {query}: {', '.join(plan['indexes']) or 'no sweep index'} ({scan})")
    print(
        f"\nLoading (COPY) took {', '.join(str(s['load_seconds']) + ' s' for s in report['scenarios'].values())}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER),
        help="Where the throwaway database is created (a maintenance database URL).",
    )
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="Keep the throwaway database afterwards.")
    args = parser.parse_args(argv)

    database_url = urlsplit(args.server_url)._replace(path=f"/{THROWAWAY}").geturl()
    _admin(args.server_url, f"DROP DATABASE IF EXISTS {THROWAWAY} WITH (FORCE)")
    _admin(args.server_url, f"CREATE DATABASE {THROWAWAY}")
    try:
        _setup_django(database_url)
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        report = _run(args)
        report.update(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
                "postgres": connections["default"].cursor().connection.info.server_version,
                "channel_layer": "redis" if os.environ.get("REDIS_URL") else "in-memory",
            }
        )
        connections.close_all()
    finally:
        if not args.keep:
            _admin(args.server_url, f"DROP DATABASE IF EXISTS {THROWAWAY} WITH (FORCE)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"sla_sweep-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    _print(report)
    print(f"Written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
