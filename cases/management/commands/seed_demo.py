"""``manage.py seed_demo``: the demo contact centre, built idempotently (see cases.demo)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from cases import demo


class Command(BaseCommand):
    help = (
        "Build the Caseline Air demo contact centre. Safe to run again: it changes nothing the second time."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=demo.DEMO_CUSTOMERS)
        parser.add_argument("--cases", type=int, default=demo.DEMO_CASES)

    def handle(self, *args, customers: int, cases: int, **options):
        started = time.monotonic()
        summary = demo.seed_demo(customers=customers, cases=cases)
        elapsed = time.monotonic() - started

        made = ", ".join(f"{count} {name}" for name, count in summary.created.items() if count) or "nothing"
        self.stdout.write(f"Demo seeded in {elapsed:.1f}s. Created: {made}.")
        if summary.cases_skipped:
            self.stdout.write("Demo cases already exist; none were added.")
        self.stdout.write(
            "In the database: " + ", ".join(f"{n} {name}" for name, n in summary.totals.items()) + "."
        )
        if summary.cross_channel_cases:
            self.stdout.write(
                "Cases that cross X, DM, e-mail and phone: "
                + " ".join(summary.cross_channel_cases[:8])
                + " ..."
            )
        self.stdout.write(self.style.SUCCESS(f"Demo logins (password: {demo.DEMO_PASSWORD}):"))
        for email, role in zip(demo.DEMO_LOGINS, ("agent", "supervisor", "admin"), strict=True):
            self.stdout.write(f"  {email:<34} {role}")
