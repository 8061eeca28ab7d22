"""``manage.py generate_load --cases N``: bulk data for benchmarks (see cases.loadgen)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from cases.loadgen import generate_load


class Command(BaseCommand):
    help = (
        "Fill the database with N cases (and their customers, identities and messages) for benchmarks. "
        "Uses COPY on PostgreSQL, bulk_create elsewhere."
    )

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, required=True, help="How many cases to create.")
        parser.add_argument("--messages-per-case", type=int, default=10)
        parser.add_argument("--batch", type=int, default=5000, help="Cases written per transaction.")
        parser.add_argument("--method", choices=["auto", "copy", "orm"], default="auto")
        parser.add_argument("--seed", type=int, default=None, help="Seed the generator for repeatable data.")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the result as JSON on the last line."
        )

    def handle(self, *args, cases, messages_per_case, batch, method, seed, as_json: bool, **options):
        try:
            result = generate_load(
                cases=cases,
                messages_per_case=messages_per_case,
                batch=batch,
                method=method,
                seed=seed,
                progress=(lambda line: self.stdout.write("  " + line)) if options["verbosity"] > 0 else None,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        written = ", ".join(f"{n:,} {name}" for name, n in result.counts.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {written} in {result.total_seconds:.1f}s "
                f"({result.rows_per_second:,.0f} rows/s, {result.method} on {result.vendor})."
            )
        )
        if as_json:
            self.stdout.write(json.dumps(result.as_dict(), sort_keys=True))
