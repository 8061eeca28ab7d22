"""The search box on the embedded default (SQLite, no services): the page answers, finds a
customer by handle, e-mail and phone, and a message by its words (LIKE instead of full text),
with an escaped snippet. In a fresh process, as ``tests/test_embedded_default.py`` runs ``make run``.
"""

from __future__ import annotations

from tests.test_embedded_default import run

CHECKS = """
from django.conf import settings
from django.test import Client
from django.urls import reverse

from cases import services
from cases.models import Membership
from tests import factories

assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3", settings.DATABASES
social = factories.DepartmentFactory(name="Social Care", slug="social-care")
billing = factories.DepartmentFactory(name="Billing", slug="billing")
x = factories.ChannelFactory(kind="x", name="Brand on X", slug="brand-x", department=social)
mail = factories.ChannelFactory(kind="email", name="Billing mailbox", slug="billing-mail", department=billing)
agent = factories.UserFactory(username="ana")
factories.MembershipFactory(user=agent, department=social, role=Membership.Role.AGENT)

riley = factories.CustomerFactory(name="Riley Quartermain")
handle = factories.IdentityFactory(customer=riley, kind="x", platform_id="81", handle="@rileyq")
factories.IdentityFactory(customer=riley, kind="email", platform_id="Riley@Example.test")
factories.IdentityFactory(customer=riley, kind="phone", platform_id="+12025550188")
case = services.case_open(customer=riley, channel=x, subject="Broken snowglobe")
message = services.message_add(case=case, direction="in", kind="post", channel=x, identity=handle,
    text="My <b>snowglobe</b> arrived broken, the box was crushed")
other = services.case_open(customer=factories.CustomerFactory(name="Hidden Person"), channel=mail)
services.message_add(case=other, direction="in", kind="email", channel=mail, text="snowglobe invoice")

client = Client(HTTP_HOST="127.0.0.1")
client.force_login(agent)

def search(q):
    response = client.get(reverse("desk:search"), {"q": q})
    assert response.status_code in (200, 302), (q, response.status_code)
    return response

for q in ["@rileyq", "RILEY@example.test", "(202) 555-0188", "quarter"]:
    assert f'data-customer="{riley.pk}"' in search(q).content.decode(), q
body = search("snowglobe crushed").content.decode()
assert f'data-message="{message.pk}"' in body, body
assert "&lt;b&gt;<mark>snowglobe</mark>&lt;/b&gt;" in body, body
assert "<b>snowglobe" not in body
assert "snowglobe invoice" not in body, "a message of another department"
assert search('"box was crushed"').content.decode().count("data-message=") == 1
assert search("snowglobe -crushed").content.decode().count("data-message=") == 0
assert search(case.reference)["Location"] == reverse("desk:case", args=[case.reference])
print("embedded search ok")
"""


def test_search_box_works_on_the_embedded_default(tmp_path):
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }

    run(["migrate", "--noinput"], env=env, cwd=tmp_path)
    checked = run(["shell", "-c", CHECKS], env=env, cwd=tmp_path)

    assert "embedded search ok" in checked
