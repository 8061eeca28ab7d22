#!/usr/bin/env python
"""Benchmark: the search box over 1,000,000 messages: latency per kind of query, index sizes, and
what the full-text index costs message inserts.

Creates a throwaway database (``caseline_bench_search``), migrates it, drops the message
full-text index, seeds the demo and runs ``generate_load`` (COPY; 100,000 cases with 10
messages each), then rewrites one message in seven with what social text also carries: a
phrase in another language and a booking code (a word that occurs once), in one ``UPDATE``.
The GIN index is then built (timed) and ``VACUUM ANALYZE`` run, as autovacuum would soon.

Queries go through ``cases.search`` as the search box calls it, for the demo agent (Social
Care: cases of their departments only) and the demo admin (everything), ``--samples``
different values per kind after a warm-up: a rare word (a booking code), a common word, a
mid-frequency word, a quoted phrase, a word in Spanish, a handle, an e-mail address, a phone
number (typed with spaces) and a case reference (the jump to the case). Also the whole page
through Django's test client. p50/p95/p99 per kind.

Inserts: ``--inserts`` messages copied from existing rows, one INSERT each in transactions
of ten (the inbox's chunks), with every index, without the full-text index, and without it
and the newest-first index; plus one INSERT ... SELECT of the same rows (server cost only).

``--compare-english`` then builds the same GIN index with the ``english`` configuration and
runs the word queries again with it, for the choice of configuration.

    .venv/bin/python bench/search.py                      # about 6-10 minutes on 2 cores
    .venv/bin/python bench/search.py --cases 20000        # a quick run
    .venv/bin/python bench/search.py --compare-english --keep

Target (issue 15): p95 under 100 ms for every kind. Figures go to stdout and to
``bench/results/search-<time>.json``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
THROWAWAY = "caseline_bench_search"
sys.path.insert(0, str(ROOT))

from tests.faults.client import percentile  # noqa: E402

# What one message in seven gets appended: customers write in several languages.
PHRASES = [
    "mi maleta no llegó y nadie responde",
    "où est ma valise depuis trois jours",
    "mein Gepäck ist verloren gegangen",
    "obrigado pela ajuda com o voo",
    "il volo è stato cancellato senza avviso",
    "mijn koffer is beschadigd bij aankomst",
    "nie dostałem zwrotu pieniędzy",
    "😡 still waiting #fail",
]
ENRICH = f"""
UPDATE cases_message SET text = text || ' ' || (ARRAY[{", ".join("'" + p.replace("'", "''") + "'" for p in PHRASES)}])
    [1 + (id * 7919) % {len(PHRASES)}] || ' booking ' || upper(substr(md5(id::text), 1, 6))
WHERE id % 7 = 0
"""
FULLTEXT_INDEX = (
    'CREATE INDEX "message_text_search_idx" ON "cases_message" '
    "USING gin (to_tsvector('{config}'::regconfig, COALESCE(\"text\", '')))"
)
INSERT_COLUMNS = (
    "case_id, channel_id, identity_id, author_id, direction, kind, is_public, external_id, "
    "in_reply_to_external_id, thread_key, subject, text, html, quoted_text, recording_url, "
    "delivery_state, delivery_error, send_attempts, idempotency_key, triage, sent_at, created_at"
)


def _admin(server_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql)


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    os.environ["DEBUG"] = "false"  # DEBUG would keep every query in memory
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["SECURE_SSL_REDIRECT"] = "false"
    os.environ["SESSION_COOKIE_SECURE"] = "false"
    os.environ.pop("REDIS_URL", None)  # measure the database, not live events
    import django

    django.setup()


def _sql(sql: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


def _timed(sql: str) -> float:
    started = time.monotonic()
    _sql(sql)
    return round(time.monotonic() - started, 2)


def _index_mb(name: str) -> float:
    return round(_sql("SELECT pg_relation_size(%s::regclass)", [name])[0][0] / 2**20, 1)


def _stats(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(ms[-1], 1),
    }


def _load(args) -> dict:
    from django.core.management import call_command

    from cases.loadgen import generate_load

    timings = {}
    started = time.monotonic()
    call_command("migrate", verbosity=0)
    # The load is written without the GIN index, which is then built once (and timed).
    _sql('DROP INDEX IF EXISTS "message_text_search_idx"')
    call_command("seed_demo", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    timings["migrate_and_seed_s"] = round(time.monotonic() - started, 1)
    result = generate_load(cases=args.cases, messages_per_case=10, seed=args.seed, progress=None)
    timings["generate_load_s"] = round(result.seconds["total"], 1)
    timings["enrich_update_s"] = _timed(ENRICH)
    timings["build_simple_gin_s"] = _timed(FULLTEXT_INDEX.format(config="simple"))
    started = time.monotonic()
    _sql("VACUUM ANALYZE")
    timings["vacuum_analyze_s"] = round(time.monotonic() - started, 1)
    return timings


def _samples(args, rng: random.Random) -> dict[str, list[str]]:
    """``--samples`` search texts per kind, drawn from the loaded data."""
    n = args.samples
    codes = [row[0] for row in _sql(
        "SELECT upper(substr(md5(id::text), 1, 6)) FROM cases_message WHERE id %% 7 = 0 "
        "ORDER BY random() LIMIT %s", [n])]  # fmt: skip
    # Words by how many messages hold them, from a sample of the texts (ts_stat over a million
    # rows would take a while).
    stats = _sql(
        "SELECT word, ndoc FROM ts_stat($$SELECT to_tsvector('simple', text) FROM cases_message "
        "TABLESAMPLE SYSTEM (2)$$) WHERE length(word) > 3 ORDER BY ndoc DESC"
    )
    total = _sql("SELECT count(*) FROM cases_message TABLESAMPLE SYSTEM (2)")[0][0] or 1
    by_share = [(word, ndoc / total) for word, ndoc in stats if word.isalpha()]
    common = [w for w, share in by_share if share > 0.05][:n] or [by_share[0][0]]
    middle = [w for w, share in by_share if 0.001 < share < 0.01][:n] or [by_share[len(by_share) // 2][0]]
    # Phrases: two neighbouring words of real message texts.
    texts = [row[0] for row in _sql(
        "SELECT text FROM cases_message TABLESAMPLE SYSTEM (1) WHERE direction = 'in' LIMIT %s", [n * 3])]  # fmt: skip
    phrases = []
    for text in texts:
        words = text.split()
        pairs = [
            (a, b)
            for a, b in zip(words, words[1:], strict=False)
            if a.isalpha() and b.isalpha() and len(a + b) > 6
        ]
        if pairs:
            phrases.append('"{} {}"'.format(*rng.choice(pairs)))
    foreign = [w for p in PHRASES[:7] for w in p.split() if len(w) > 4]
    idents = {kind: [row[0] for row in _sql(
        "SELECT platform_id FROM customers_identity WHERE kind = %s ORDER BY random() LIMIT %s", [kind, n])]
        for kind in ("x", "email", "phone")}  # fmt: skip
    handles = [row[0] for row in _sql(
        "SELECT handle FROM customers_identity WHERE kind = 'x' ORDER BY random() LIMIT %s", [n])]  # fmt: skip
    references = [row[0] for row in _sql(
        "SELECT reference FROM cases_case WHERE department_id IN "
        "(SELECT department_id FROM cases_membership m JOIN auth_user u ON u.id = m.user_id WHERE u.email = %s) "
        "ORDER BY random() LIMIT %s", [args.agent, n])]  # fmt: skip
    names = [row[0] for row in _sql("SELECT name FROM customers_customer ORDER BY random() LIMIT %s", [n])]
    return {
        "rare_word": [c.lower() for c in codes],
        "common_word": [common[i % len(common)] for i in range(n)],
        "mid_word": [middle[i % len(middle)] for i in range(n)],
        "phrase": phrases[:n],
        "foreign_word": [foreign[i % len(foreign)] for i in range(n)],
        "customer_name": names,
        "handle": handles,
        "email": [address.upper() for address in idents["email"]],
        "phone": [f"{p[:3]} {p[3:7]} {p[7:]}" for p in idents["phone"]],
        "reference": references,
    }


def _run_selector(user, kind: str, q: str, *, messages_only: bool = False) -> int:
    from cases import search

    if messages_only:
        return len(search.search_messages(user=user, text=q)[0])
    if kind == "reference":
        return int(search.reference_case(user=user, q=q) is not None)
    results = search.desk_search(user=user, q=q)
    return len(results.customers) + len(results.messages) + int(results.case is not None)


def _measure(users: dict, samples: dict[str, list[str]], *, warmup: int, messages_only: bool = False) -> dict:
    out = {}
    for who, user in users.items():
        for kind, values in samples.items():
            for q in values[:warmup]:
                _run_selector(user, kind, q, messages_only=messages_only)
            seconds, found = [], 0
            for q in values:
                user.__dict__.pop("_caseline_memberships", None)  # a new request reads them again
                started = time.perf_counter()
                found += bool(_run_selector(user, kind, q, messages_only=messages_only))
                seconds.append(time.perf_counter() - started)
            out[f"{who}/{kind}"] = {**_stats(seconds), "found_share": round(found / len(values), 2)}
            print(f"  {who:5} {kind:13} {out[f'{who}/{kind}']}", flush=True)
    return out


def _measure_page(user, samples: dict[str, list[str]], *, per_kind: int) -> dict:
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(user)
    out = {}
    for kind, values in samples.items():
        seconds = []
        for q in values[:per_kind]:
            started = time.perf_counter()
            response = client.get(reverse("desk:search"), {"q": q})
            seconds.append(time.perf_counter() - started)
            if response.status_code not in (200, 302):
                raise RuntimeError(f"search {q!r} answered {response.status_code}")
        out[kind] = _stats(seconds)
    return out


def _plans(user, samples: dict[str, list[str]]) -> dict:
    """The top lines of the plan of the selector's message query, one sample per word kind (the
    order ``cases.search._newest_first`` picks)."""
    from cases import fulltext, permissions, search
    from cases.models import Case, Message

    plans = {}
    for kind in ("rare_word", "common_word", "mid_word", "phrase", "foreign_word"):
        q = samples[kind][0]
        matching = Message.objects.alias(search=fulltext.vector("text")).filter(search=fulltext.websearch(q))
        visible = matching.filter(
            case_id__in=Case.objects.filter(permissions.visible_cases_q(user)).values("pk")
        )
        qs = search._newest_first(visible.values("id"), matching.values("pk"))[:21]
        plans[kind] = [line.strip() for line in qs.explain(analyze=True).splitlines()][:12]
    return plans


def _inserts(count: int) -> dict:
    """Messages per second inserted one statement each (ten per transaction), by index set."""
    from django.db import connection

    ids = [row[0] for row in _sql("SELECT id FROM cases_message ORDER BY random() LIMIT %s", [count])]
    rows = _sql(f"SELECT {INSERT_COLUMNS} FROM cases_message WHERE id = ANY(%s)", [ids])
    placeholders = ", ".join(["%s"] * len(rows[0]))
    insert = f"INSERT INTO cases_message ({INSERT_COLUMNS}) VALUES ({placeholders})"
    fix = [list(r) for r in rows]
    for r in fix:
        r[7] = ""  # no external id: the unique constraint would refuse a copy
        r[18] = str(uuid.uuid4())
        r[19] = r[19] if isinstance(r[19], str) else json.dumps(r[19])
    connection.connection.autocommit = False

    def once() -> dict:
        raw = connection.connection
        with raw.cursor() as cursor:
            started = time.perf_counter()
            for n, row in enumerate(fix, 1):
                cursor.execute(insert, row)
                if n % 10 == 0:
                    raw.commit()
            raw.commit()
            single = len(fix) / (time.perf_counter() - started)
            cursor.execute("DELETE FROM cases_message WHERE id > %s", [max_id])
            raw.commit()
            started = time.perf_counter()
            cursor.execute(
                f"INSERT INTO cases_message ({INSERT_COLUMNS}) SELECT case_id, channel_id, identity_id, "
                "author_id, direction, kind, is_public, '', in_reply_to_external_id, thread_key, subject, "
                "text, html, quoted_text, recording_url, delivery_state, delivery_error, send_attempts, "
                "gen_random_uuid(), triage, sent_at, created_at FROM cases_message WHERE id = ANY(%s)",
                [ids],
            )
            raw.commit()
            bulk = len(fix) / (time.perf_counter() - started)
            cursor.execute("DELETE FROM cases_message WHERE id > %s", [max_id])
            raw.commit()
        return {"one_per_statement_per_s": round(single), "insert_select_per_s": round(bulk)}

    max_id = _sql("SELECT max(id) FROM cases_message")[0][0]
    out = {"all_indexes": once()}
    _sql('DROP INDEX "message_text_search_idx"')
    connection.connection.commit()
    out["without_fulltext"] = once()
    _sql('DROP INDEX "message_recent_idx"')
    connection.connection.commit()
    out["without_fulltext_or_recent"] = once()
    _sql('CREATE INDEX "message_recent_idx" ON "cases_message" ("sent_at" DESC, "id" DESC)')
    _sql(FULLTEXT_INDEX.format(config="simple"))
    connection.connection.commit()
    connection.connection.autocommit = True
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER),
        help="Where the throwaway database is created (a maintenance database URL).",
    )
    parser.add_argument("--cases", type=int, default=100_000, help="Ten messages each.")
    parser.add_argument("--samples", type=int, default=60, help="Different search texts per kind.")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--inserts", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--agent", default="alex.morgan@caseline.example")
    parser.add_argument("--compare-english", action="store_true")
    parser.add_argument("--keep", action="store_true", help="Keep the throwaway database afterwards.")
    args = parser.parse_args(argv)

    url = urlsplit(args.server_url)._replace(path=f"/{THROWAWAY}").geturl()
    _admin(args.server_url, f'DROP DATABASE IF EXISTS "{THROWAWAY}" WITH (FORCE)')
    _admin(args.server_url, f'CREATE DATABASE "{THROWAWAY}"')
    _setup_django(url)
    from django.contrib.auth import get_user_model
    from django.db import connections

    from cases import demo, fulltext

    report: dict = {"bench": "search", "at": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        print(f"Loading {args.cases:,} cases, {args.cases * 10:,} messages into {THROWAWAY} ...", flush=True)
        report["load"] = _load(args)
        print(f"  {report['load']}", flush=True)
        users = get_user_model().objects
        agent = users.get(email=demo.demo_email("agent"))
        args.agent = agent.email
        admin = users.get(email=demo.demo_email("admin"))
        rng = random.Random(args.seed)
        samples = _samples(args, rng)
        report["samples"] = {kind: values[:5] for kind, values in samples.items()}
        report["counts"] = {
            table: _sql(f"SELECT count(*) FROM {table}")[0][0]
            for table in ("cases_message", "cases_case", "customers_customer", "customers_identity")
        }
        report["index_mb"] = {
            name: _index_mb(name)
            for name in ("message_text_search_idx", "message_recent_idx", "customer_name_search_idx",
                         "case_subject_search_idx", "message_timeline_idx")
        }  # fmt: skip
        report["table_mb"] = round(_sql("SELECT pg_table_size('cases_message')")[0][0] / 2**20, 1)
        print(f"  indexes {report['index_mb']} MB, messages table {report['table_mb']} MB", flush=True)
        print("Selector, simple configuration:", flush=True)
        report["selector"] = _measure({"agent": agent, "admin": admin}, samples, warmup=args.warmup)
        report["page_agent"] = _measure_page(agent, samples, per_kind=min(30, args.samples))
        print(f"  page (agent): {report['page_agent']}", flush=True)
        report["plans_agent"] = _plans(agent, samples)
        words = {
            k: v
            for k, v in samples.items()
            if k in ("rare_word", "common_word", "mid_word", "phrase", "foreign_word")
        }
        if args.compare_english:
            print("Messages only, simple configuration:", flush=True)
            report["simple_messages_only"] = _measure(
                {"agent": agent}, words, warmup=args.warmup, messages_only=True
            )
        print("Inserts ...", flush=True)
        report["inserts"] = _inserts(args.inserts)
        print(f"  {report['inserts']}", flush=True)
        if args.compare_english:
            _sql('DROP INDEX "message_text_search_idx"')
            report["english"] = {"build_s": _timed(FULLTEXT_INDEX.format(config="english"))}
            _sql("ANALYZE cases_message")
            report["english"]["index_mb"] = _index_mb("message_text_search_idx")
            fulltext.SEARCH_CONFIG = "english"  # every search expression reads it when it is built
            print("Messages only, english configuration:", flush=True)
            report["english"]["messages_only"] = _measure(
                {"agent": agent}, words, warmup=args.warmup, messages_only=True
            )
        report["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgres": _sql("SHOW server_version")[0][0],
            "load_average": os.getloadavg(),
        }
    finally:
        connections.close_all()
        if not args.keep:
            _admin(args.server_url, f'DROP DATABASE IF EXISTS "{THROWAWAY}" WITH (FORCE)')
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"search-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))
    print(f"written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
