"""The queue row is built in Python (cases/templatetags/desk.py); it must print what the row
template printed, escape every value, and be the same on the page and in a live push."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.template import Context, Template
from django.template.loader import render_to_string
from django.urls import reverse

from cases import selectors
from cases.models import Case
from tests import factories
from tests.desk.conftest import open_case

# The row as a Django template (what templates/cases/partials/queue_row.html was): the
# reference the Python row is held to, value for value and byte for byte.
ROW_TEMPLATE = """{% load desk %}<tr id="case-row-{{ case.pk }}" data-case="{{ case.reference }}" data-key="{% queue_key case %}">
  <td class="case-cell" data-label="Case">{% with href=case.reference|case_url %}
    <a class="ref" href="{{ href }}">{{ case.reference }}</a>
    {% if case.subject %}
      <a class="subject" href="{{ href }}">{{ case.subject }}</a>
    {% elif case.opening_words %}
      <a class="subject is-snippet" href="{{ href }}">{{ case.opening_words|truncatewords:12 }}</a>
    {% endif %}{% endwith %}
  </td>
  <td data-label="Customer">
    <a class="cust" href="{{ case.customer_id|customer_url }}">{{ case.customer }}</a>{% if case.customer.is_vip %} <span class="badge vip">VIP</span>{% endif %}
    {% if case.last_identity_label %}<span class="handle">{{ case.last_identity_label }}</span>{% endif %}
  </td>
  <td data-label="Channel">{% if case.last_channel %}{% channel_badge case.last_channel.kind %}{% else %}<span class="faint">—</span>{% endif %}</td>
  <td data-label="Status"><span class="badge st-{{ case.status }}">{{ case.get_status_display }}</span></td>
  <td data-label="Priority"><span class="badge pr-{{ case.priority }}">{{ case.get_priority_display }}</span></td>
  <td data-label="Promise"><span class="sla">{% sla_badge case %}{% countdown_time case.due_at %}</span></td>
  <td data-label="Assignee">{% if case.assignee %}{{ case.assignee|person }}{% else %}<span class="faint">Unassigned</span>{% endif %}<span class="handle">{{ case.department }}</span></td>
  <td data-label="Customer wrote">{% if case.last_inbound_at %}<time datetime="{{ case.last_inbound_at|iso }}" title="{{ case.last_inbound_at|stamp }}">{{ case.last_inbound_at|ago }}</time>{% else %}<span class="faint">—</span>{% endif %}</td>
</tr>
"""

ROW_RE = re.compile(r'<tr id="case-row-\d+".*?</tr>\n', re.DOTALL)


@pytest.fixture
def varied_cases(channels, agent):
    """Cases covering every branch of a row, with text that needs escaping."""
    nameless = factories.CustomerFactory(name="")
    vip = factories.CustomerFactory(name="Ann <b>\"&' Co", tier="vip")
    handle = factories.IdentityFactory(customer=vip, kind="x", platform_id="77", handle="@a&<b>")
    agent.first_name, agent.last_name = "", ""  # no full name: the e-mail address is shown
    agent.save()
    made = [
        open_case(channel=channels["x"], customer=vip, identity=handle, subject="<script>alert(1)</script>"),
        open_case(
            channel=channels["email"],
            kind="email",
            text="One two three four five six seven <eight> nine ten eleven twelve thirteen & more",
            wrote_minutes_ago=200,
            assignee=agent,
        ),
        open_case(channel=channels["facebook"], customer=nameless, kind="comment", wrote_minutes_ago=30),
        open_case(channel=channels["whatsapp"], kind="dm", subject="Short", priority="urgent"),
        open_case(channel=channels["phone"], kind="call", wrote_minutes_ago=3000),
    ]
    # No clock, no channel, never wrote (a case opened by an agent), at risk, breached.
    Case.objects.filter(pk=made[2].pk).update(due_at=None)
    Case.objects.filter(pk=made[3].pk).update(last_channel=None, last_inbound_at=None)
    Case.objects.filter(pk=made[4].pk).update(sla_state=Case.SlaState.BREACHED)
    Case.objects.filter(pk=made[0].pk).update(sla_state=Case.SlaState.AT_RISK)
    return made


@pytest.mark.django_db
def test_row_prints_what_the_row_template_printed(agent, varied_cases):
    reference = Template(ROW_TEMPLATE)
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=7), tick=False):
        cases = selectors.live_queue_rows(case_ids=[case.pk for case in varied_cases])  # Case objects
        page = selectors.case_queue_page(user=agent, view="department").cases  # plain row values
        assert sorted(row.pk for row in page) == sorted(cases) == sorted(case.pk for case in varied_cases)
        for row in page:
            expected = reference.render(Context({"case": cases[row.pk]}))
            assert render_to_string("cases/partials/queue_row.html", {"case": cases[row.pk]}) == expected
            assert render_to_string("cases/partials/queue_row.html", {"case": row}) == expected


@pytest.mark.django_db
def test_escapes_every_value(varied_cases):
    rows = selectors.live_queue_rows(case_ids=[case.pk for case in varied_cases])
    html = "".join(
        render_to_string("cases/partials/queue_row.html", {"case": case}) for case in rows.values()
    )

    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'Ann &lt;b&gt;&quot;&amp;&#x27; Co</a> <span class="badge vip">VIP</span>' in html
    assert '<span class="handle">@a&amp;&lt;b&gt;</span>' in html
    assert "One two three four five six seven &lt;eight&gt; nine ten eleven twelve …" in html
    assert f"Customer #{varied_cases[2].customer_id}" in html
    assert "agent@example.test" in html  # an assignee without a name


@pytest.mark.django_db
def test_page_rows_are_the_rows_live_updates_push(client, agent, varied_cases):
    client.force_login(agent)
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=7), tick=False):
        body = client.get(reverse("desk:queue"), {"view": "department"}).content.decode()
        pushed = selectors.live_queue_rows(case_ids=[case.pk for case in varied_cases])
        expected = {
            case.pk: render_to_string("cases/partials/queue_row.html", {"case": case})
            for case in pushed.values()
        }

    on_page = ROW_RE.findall(body)
    assert len(on_page) == len(varied_cases)
    for row in on_page:
        pk = int(re.match(r'<tr id="case-row-(\d+)"', row).group(1))
        assert row == expected[pk]
