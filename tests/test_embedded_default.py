"""The embedded default: with no DATABASE_URL and no REDIS_URL, ``make run`` works on a bare machine.

Runs the same commands ``make run`` does, in a fresh process whose environment holds
nothing but PATH, HOME and DEBUG (and a SQLite file in a temporary directory, so the
developer's own ``db.sqlite3`` is left alone).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cases import demo

ROOT = Path(__file__).resolve().parent.parent
MANAGE = str(ROOT / "manage.py")

CHECKS = f"""
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.test import Client
from django.urls import reverse

from cases.models import Case
from config.celery import app

assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3", settings.DATABASES
assert isinstance(get_channel_layer(), InMemoryChannelLayer), get_channel_layer()
assert app.conf.task_always_eager, "Celery must run tasks inline without a broker"
assert settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"), settings.CACHES

client = Client(HTTP_HOST="127.0.0.1")
response = client.post(reverse("account_login"), {{"login": "{demo.demo_email("agent")}", "password": "{demo.DEMO_PASSWORD}"}})
assert response.status_code == 302, (response.status_code, response.content[:2000])
response = client.get("/desk/")
assert response.status_code == 200, response.status_code

case = (
    Case.objects.filter(assignee__email="{demo.demo_email("agent")}", messages__kind="call")
    .filter(messages__kind="email").filter(messages__kind="dm").distinct().first()
)
assert case is not None, "the demo agent has no case that crossed channels"
response = client.get(reverse("desk:case", args=[case.reference]))
assert response.status_code == 200, response.status_code
assert case.reference in response.content.decode()
print("embedded default ok", case.reference)
"""


def run(args: list[str], *, env: dict, cwd: Path) -> str:
    completed = subprocess.run(
        [sys.executable, MANAGE, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, f"manage.py {args[0]} failed:\n{completed.stdout}\n{completed.stderr}"
    return completed.stdout


def test_make_run_works_with_no_services_configured(tmp_path):
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }

    run(["migrate", "--noinput"], env=env, cwd=tmp_path)
    seeded = run(["seed_demo"], env=env, cwd=tmp_path)
    run(["check"], env=env, cwd=tmp_path)
    checked = run(["shell", "-c", CHECKS], env=env, cwd=tmp_path)

    assert (tmp_path / "db.sqlite3").stat().st_size > 0
    assert demo.demo_email("agent") in seeded and demo.DEMO_PASSWORD in seeded
    assert "embedded default ok" in checked
