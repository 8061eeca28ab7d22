"""The admins' settings pages in the desk: service promises, breach ladders, business calendars,
the due-time preview, and the audit trail beside them.

Expected due times are worked out by hand from the clock rules (``cases/sla.py``): working
minutes count only inside a calendar's open spans, in its own time zone, skipping public
holidays of its country and the admin's extra closed days.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from cases import promise_settings, services
from cases.errors import ServiceError
from cases.models import BusinessCalendar, EscalationPath, Membership, ServicePromise
from tests import factories

LONDON = ZoneInfo("Europe/London")
# A split shift: a lunch hour from 12:30 to 13:30, closing at 18:00 on weekdays.
SPLIT_SHIFT = "09:00-12:30, 13:30-18:00"

# session, user, channels with their promises and calendars, calendars, audit entries with
# their actors, memberships with their departments (the top bar)
INDEX_QUERIES = 6
# session, user, the channel with its department, promise and calendar, its department's
# breach ladder, its department's channels, calendars, departments (ladder targets and names
# in the audit), audit entries with their actors, memberships (the top bar)
CHANNEL_QUERIES = 9
# session, user, the calendar, the channels on it, audit entries with their actors,
# memberships (the top bar)
CALENDAR_QUERIES = 6
# session, user, the channel with its department, promise and calendar, its breach ladder,
# its department's channels
PREVIEW_QUERIES = 5
# the same, and the calendars the form offers
PREVIEW_WITH_FORM_QUERIES = PREVIEW_QUERIES + 1


def text_of(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def entries_for(obj) -> list[LogEntry]:
    content_type = ContentType.objects.get_for_model(type(obj))
    return list(LogEntry.objects.filter(content_type=content_type, object_id=obj.pk).order_by("id"))


@pytest.fixture
def admin_user(db):
    return factories.UserFactory(
        username="cfg-admin",
        email="cfg-admin@example.test",
        first_name="Ada",
        last_name="Admin",
        is_staff=True,
    )


@pytest.fixture
def desk(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def office(admin_user):
    """Weekdays with a lunch break, closing at 18:00, in London, with England's public holidays."""
    return promise_settings.calendar_save(
        calendar=None,
        actor=admin_user,
        name="Office",
        time_zone="Europe/London",
        always_open=False,
        weekly_hours={str(day): promise_settings.parse_day_hours(SPLIT_SHIFT) for day in range(1, 6)},
        holiday_country="GB",
        extra_closed_dates=[],
    )


@pytest.fixture
def promise(channel, office, admin_user):
    """The X channel's promise (60 minutes to a first answer) on the office calendar."""
    return promise_settings.promise_save(
        channel=channel,
        actor=admin_user,
        calendar=office,
        first_response_minutes=60,
        next_response_minutes=60,
        resolution_minutes=480,
        at_risk_ratio=Decimal("0.75"),
        priority_overrides={"urgent": {"first_response_minutes": 15}},
    )


@pytest.fixture
def ladder(department, other_department):
    return EscalationPath.objects.create(
        from_department=department,
        to_department=other_department,
        trigger=EscalationPath.Trigger.SLA_BREACH,
        warn_after_minutes=0,
        notify_after_minutes=15,
        escalate_after_minutes=30,
    )


def promise_post(promise: ServicePromise, **changes) -> dict:
    """The promise form as the page fills it, with ``changes``."""
    data = {
        "calendar": str(promise.calendar_id or ""),
        "first_response_minutes": promise.first_response_minutes,
        "next_response_minutes": promise.next_response_minutes,
        "resolution_minutes": promise.resolution_minutes,
        "at_risk_ratio": str(promise.at_risk_ratio),
    }
    for priority, targets in promise.priority_overrides.items():
        for name, minutes in targets.items():
            data[f"override_{priority}_{name}"] = minutes
    return {**data, **changes}


def calendar_post(calendar: BusinessCalendar, **changes) -> dict:
    data = {
        "name": calendar.name,
        "time_zone": calendar.time_zone,
        "holiday_country": calendar.holiday_country,
        "extra_closed_dates": ", ".join(calendar.extra_closed_dates),
        **{
            f"hours_{day}": promise_settings.format_day_hours(calendar.weekly_hours.get(str(day), []))
            for day in range(1, 8)
        },
    }
    if calendar.always_open:
        data["always_open"] = "on"
    return {**data, **changes}


def ladder_post(path: EscalationPath, **changes) -> dict:
    data = {
        f"ladder-{path.pk}-{name}": "" if getattr(path, name) is None else getattr(path, name)
        for name in promise_settings.LADDER_STEPS
    }
    return {**data, **{f"ladder-{path.pk}-{name}": value for name, value in changes.items()}}


def field_has_error(response, name: str) -> bool:
    """The input called ``name`` is marked invalid (Django sets aria-invalid on a field with errors)."""
    tag = re.search(
        rf'<(?:input|select|textarea)[^>]*name="{re.escape(name)}"[^>]*>', response.content.decode()
    )
    return bool(tag) and 'aria-invalid="true"' in tag.group(0)


# --- Editing, and the audit trail on the same page -----------------------------------------------------


def test_admin_edits_a_promise_and_sees_who_changed_what(desk, admin_user, channel, promise):
    # when the admin tightens the first response and the at-risk share
    response = desk.post(
        reverse("settings:promise_save", args=[channel.pk]),
        promise_post(promise, first_response_minutes=45, at_risk_ratio="0.8"),
    )

    # then the promise is saved, with one audit entry naming the admin and both values
    assert response.status_code == 302
    promise.refresh_from_db()
    assert (promise.first_response_minutes, promise.at_risk_ratio) == (45, Decimal("0.80"))
    change = entries_for(promise)[-1]
    assert change.action == LogEntry.Action.UPDATE
    assert change.actor == admin_user
    assert set(change.changes) == {"first_response_minutes", "at_risk_ratio"}
    assert change.changes["first_response_minutes"] == [60, 45]

    # and the page shows the entry: who, what changed from what to what
    page = desk.get(response.url)
    audit = text_of(page).split("Recent changes", 1)[1]
    assert "Ada Admin changed Promise for Brand on X (X)" in audit
    assert "First response target : 60 min → 45 min" in audit
    assert "At-risk share : 0.75 → 0.80" in audit
    assert "The promise of Brand on X is saved." in text_of(page)


def test_saving_an_unchanged_promise_records_nothing(desk, channel, promise):
    before = len(entries_for(promise))

    response = desk.post(reverse("settings:promise_save", args=[channel.pk]), promise_post(promise))

    assert response.status_code == 302
    assert len(entries_for(promise)) == before


def test_a_channel_without_a_promise_gets_one(desk, admin_user, department, office):
    mail = factories.ChannelFactory(
        kind="email", name="Support mailbox", slug="mailbox", department=department
    )

    page = desk.get(reverse("settings:channel", args=[mail.pk]))
    assert "This channel has no promise yet" in text_of(page)
    response = desk.post(
        reverse("settings:promise_save", args=[mail.pk]),
        {
            "calendar": str(office.pk),
            "first_response_minutes": 480,
            "next_response_minutes": 480,
            "resolution_minutes": 2400,
            "at_risk_ratio": "0.75",
            "override_urgent_first_response_minutes": "120",
        },
    )

    assert response.status_code == 302
    promise = ServicePromise.objects.get(channel=mail)
    assert promise.calendar == office
    assert promise.priority_overrides == {"urgent": {"first_response_minutes": 120}}
    (created,) = entries_for(promise)
    assert created.action == LogEntry.Action.CREATE and created.actor == admin_user


def test_admin_edits_a_calendar_with_split_shifts_and_sees_the_entry(desk, admin_user, office):
    response = desk.post(
        reverse("settings:calendar", args=[office.pk]),
        calendar_post(
            office,
            hours_6="10:00-14:00",
            hours_1="13:30-17:30, 8:30-12:00",
            holiday_country="gb-sct",
            extra_closed_dates="2026-12-31\n2026-12-24, 2026-12-24",
        ),
    )

    assert response.status_code == 302, text_of(response)[:2000]
    office.refresh_from_db()
    assert office.weekly_hours["1"] == [["08:30", "12:00"], ["13:30", "17:30"]]  # sorted, padded
    assert office.weekly_hours["6"] == [["10:00", "14:00"]]
    assert "7" not in office.weekly_hours
    assert office.holiday_country == "GB-SCT"
    assert office.extra_closed_dates == ["2026-12-24", "2026-12-31"]
    change = entries_for(office)[-1]
    assert change.actor == admin_user
    assert set(change.changes) == {"weekly_hours", "holiday_country", "extra_closed_dates"}

    page = desk.get(response.url)
    text = text_of(page)
    audit = text.split("Recent changes", 1)[1]
    assert "Ada Admin changed Office" in audit
    assert "Public holidays of : GB → GB-SCT" in audit
    assert "Extra closed days : none → 2026-12-24, 2026-12-31" in audit
    # weekly hours are told day by day, only the days that changed
    assert "Monday hours : 09:00-12:30, 13:30-18:00 → 08:30-12:00, 13:30-17:30" in audit
    assert "Saturday hours : closed → 10:00-14:00" in audit
    assert "Tuesday hours" not in audit.split("Ada Admin created")[0]
    # the form shows the hours as they were typed in, one field per weekday
    assert 'value="08:30-12:00, 13:30-17:30"' in page.content.decode()


def test_admin_creates_a_calendar_and_uses_it(desk, admin_user, channel, promise):
    response = desk.post(
        reverse("settings:calendar_new"),
        {
            "name": "Night desk",
            "time_zone": "America/New_York",
            "hours_5": "22:00-06:00",
            "holiday_country": "US-NY",
        },
    )

    assert response.status_code == 302, text_of(response)[:2000]
    night = BusinessCalendar.objects.get(name="Night desk")
    assert night.weekly_hours == {"5": [["22:00", "06:00"]]}  # runs past midnight into Saturday
    assert night.holiday_country == "US-NY"
    assert entries_for(night)[0].actor == admin_user


def test_admin_edits_the_breach_ladder(desk, admin_user, channel, promise, ladder):
    response = desk.post(
        reverse("settings:ladder_save", args=[channel.pk, ladder.pk]),
        ladder_post(ladder, warn_after_minutes=5, notify_after_minutes=20, escalate_after_minutes=""),
    )

    assert response.status_code == 302
    ladder.refresh_from_db()
    assert (ladder.warn_after_minutes, ladder.notify_after_minutes, ladder.escalate_after_minutes) == (
        5,
        20,
        None,
    )
    change = entries_for(ladder)[-1]
    assert change.actor == admin_user
    assert change.changes["escalate_after_minutes"] == [30, None]
    audit = text_of(desk.get(response.url)).split("Recent changes", 1)[1]
    assert "Escalate after : 30 min → skipped" in audit
    assert "Warn the assignee after : 0 min → 5 min" in audit


def test_admin_gives_a_department_a_breach_ladder(
    desk, admin_user, channel, promise, department, other_department
):
    page = desk.get(reverse("settings:channel", args=[channel.pk]))
    assert "Social Care has no breach ladder" in text_of(page)

    response = desk.post(
        reverse("settings:ladder_create", args=[channel.pk]),
        {
            "new-ladder-to_department": str(other_department.pk),
            "new-ladder-warn_after_minutes": "0",
            "new-ladder-notify_after_minutes": "10",
            "new-ladder-escalate_after_minutes": "45",
        },
    )

    assert response.status_code == 302
    path = EscalationPath.objects.get(from_department=department, trigger=EscalationPath.Trigger.SLA_BREACH)
    assert (path.to_department, path.escalate_after_minutes, path.order) == (other_department, 45, 1)
    assert entries_for(path)[0].actor == admin_user
    assert "To Billing · level 1 · applies" in text_of(desk.get(response.url))


# --- Bad values name the field ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"at_risk_ratio": "1.5"},
            "at_risk_ratio",
            "At-risk share must be between 0.01 and 0.99, with at most two decimals (0.75 is 75%).",
        ),
        ({"at_risk_ratio": "0"}, "at_risk_ratio", "At-risk share must be between 0.01 and 0.99"),
        ({"at_risk_ratio": "0.755"}, "at_risk_ratio", "with at most two decimals"),
        ({"at_risk_ratio": "lots"}, "at_risk_ratio", "At-risk share is a number such as 0.75."),
        (
            {"first_response_minutes": "0"},
            "first_response_minutes",
            "First response target must be between 1 and 1,000,000 working minutes.",
        ),
        (
            {"next_response_minutes": "an hour"},
            "next_response_minutes",
            "Next response target: a whole number of working minutes.",
        ),
        (
            {"resolution_minutes": ""},
            "resolution_minutes",
            "Resolution target is required, in working minutes.",
        ),
        (
            {"override_urgent_first_response_minutes": "90"},
            "override_urgent_first_response_minutes",
            "Urgent first response: an override tightens the target, so at most 60 minutes.",
        ),
        (
            {"override_high_resolution_minutes": "-5"},
            "override_high_resolution_minutes",
            "High resolution: at least 1 working minute.",
        ),
    ],
)
def test_bad_promise_values_name_the_field(desk, channel, promise, changes, field, message):
    before = len(entries_for(promise))

    response = desk.post(
        reverse("settings:promise_save", args=[channel.pk]), promise_post(promise, **changes)
    )

    assert response.status_code == 400
    assert message in text_of(response)
    assert field_has_error(response, field)
    promise.refresh_from_db()
    assert promise.first_response_minutes == 60 and promise.at_risk_ratio == Decimal("0.75")
    assert len(entries_for(promise)) == before


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"time_zone": "Mars/Olympus"},
            "time_zone",
            "“Mars/Olympus” is not an IANA time zone such as Europe/London or America/New_York.",
        ),
        ({"hours_1": "9am-5pm"}, "hours_1", "Monday: “9am-5pm” is not a span like 09:00-17:30."),
        ({"hours_2": "09:00-25:00"}, "hours_2", "Tuesday: “09:00-25:00”: times run from 00:00 to 24:00."),
        (
            {"hours_3": "09:00-13:00, 12:00-17:00"},
            "hours_3",
            "Wednesday: Spans overlap around 12:00: make them one span.",
        ),
        ({"hours_4": "09:00-09:00"}, "hours_4", "Thursday: “09:00-09:00” starts and ends at the same time."),
        (
            {"holiday_country": "XX"},
            "holiday_country",
            "“XX” is not a country code the holidays calendar knows (e.g. GB, US, DE).",
        ),
        ({"holiday_country": "US-ZZ"}, "holiday_country", "“ZZ” is not a subdivision of US (known: AK, AL"),
        (
            {"extra_closed_dates": "2026-12-24, 2026-13-40"},
            "extra_closed_dates",
            "Not dates written as YYYY-MM-DD: 2026-13-40.",
        ),
        ({"name": ""}, "name", "This field is required."),
    ],
)
def test_bad_calendar_values_name_the_field(desk, office, changes, field, message):
    before = len(entries_for(office))

    response = desk.post(reverse("settings:calendar", args=[office.pk]), calendar_post(office, **changes))

    assert response.status_code == 400
    assert message in text_of(response)
    assert field_has_error(response, field)
    office.refresh_from_db()
    assert office.time_zone == "Europe/London" and office.holiday_country == "GB"
    assert len(entries_for(office)) == before


def test_a_calendar_needs_hours_unless_always_open(desk, office):
    closed_all_week = calendar_post(office, **{f"hours_{day}": "" for day in range(1, 8)})

    refused = desk.post(reverse("settings:calendar", args=[office.pk]), closed_all_week)
    allowed = desk.post(
        reverse("settings:calendar", args=[office.pk]), {**closed_all_week, "always_open": "on"}
    )

    assert refused.status_code == 400
    assert "Weekly hours: a calendar that is not open around the clock needs open hours." in text_of(refused)
    assert allowed.status_code == 302
    office.refresh_from_db()
    assert office.always_open and office.weekly_hours == {}


def test_a_calendar_name_is_taken_once(desk, office):
    desk.post(reverse("settings:calendar_new"), calendar_post(office, name="Weekend"))

    response = desk.post(reverse("settings:calendar_new"), calendar_post(office, name="Weekend"))

    assert response.status_code == 400
    assert "Business calendar with this Name already exists." in text_of(response)
    assert field_has_error(response, "name")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"warn_after_minutes": 10, "notify_after_minutes": 5},
            "notify_after_minutes",
            "Notify supervisors comes at or after “warn the assignee” (10 minutes): the steps run in order.",
        ),
        (
            {"warn_after_minutes": "", "notify_after_minutes": 40, "escalate_after_minutes": 20},
            "escalate_after_minutes",
            "Escalate comes at or after “notify supervisors” (40 minutes)",
        ),
        (
            {"warn_after_minutes": -1},
            "warn_after_minutes",
            "Warn the assignee: between 0 and 100,000 minutes",
        ),
        (
            {"escalate_after_minutes": "soon"},
            "escalate_after_minutes",
            "Escalate: a whole number of working minutes.",
        ),
    ],
)
def test_bad_ladder_values_name_the_field(desk, channel, promise, ladder, changes, field, message):
    response = desk.post(
        reverse("settings:ladder_save", args=[channel.pk, ladder.pk]), ladder_post(ladder, **changes)
    )

    assert response.status_code == 400
    assert message in text_of(response)
    assert field_has_error(response, f"ladder-{ladder.pk}-{field}")
    ladder.refresh_from_db()
    assert (ladder.warn_after_minutes, ladder.notify_after_minutes, ladder.escalate_after_minutes) == (
        0,
        15,
        30,
    )


def test_the_services_refuse_what_the_forms_refuse(admin_user, channel, promise, ladder):
    with pytest.raises(ServiceError) as refused:
        promise_settings.promise_save(
            channel=channel,
            actor=admin_user,
            calendar=None,
            first_response_minutes=60,
            next_response_minutes=60,
            resolution_minutes=480,
            at_risk_ratio=Decimal("1"),
            priority_overrides={},
        )
    assert refused.value.field == "at_risk_ratio"
    with pytest.raises(ServiceError) as refused:
        promise_settings.ladder_save(
            path=ladder,
            actor=admin_user,
            warn_after_minutes=30,
            notify_after_minutes=10,
            escalate_after_minutes=None,
        )
    assert refused.value.field == "notify_after_minutes"
    with pytest.raises(ServiceError) as refused:
        promise_settings.calendar_save(
            calendar=None,
            actor=admin_user,
            name="Broken",
            time_zone="UTC",
            always_open=False,
            weekly_hours={"8": [["09:00", "17:00"]]},
            holiday_country="",
            extra_closed_dates=[],
        )
    assert "is not an ISO weekday" in refused.value.message
    assert not BusinessCalendar.objects.filter(name="Broken").exists()


# --- Who may -------------------------------------------------------------------------------------------


def every_settings_url(channel, office, ladder) -> list[tuple[str, str]]:
    return [
        ("get", reverse("settings:index")),
        ("get", reverse("settings:channel", args=[channel.pk])),
        ("get", reverse("settings:preview", args=[channel.pk])),
        ("post", reverse("settings:promise_save", args=[channel.pk])),
        ("post", reverse("settings:ladder_create", args=[channel.pk])),
        ("post", reverse("settings:ladder_save", args=[channel.pk, ladder.pk])),
        ("get", reverse("settings:calendar_new")),
        ("post", reverse("settings:calendar_new")),
        ("get", reverse("settings:calendar", args=[office.pk])),
        ("post", reverse("settings:calendar", args=[office.pk])),
    ]


@pytest.mark.parametrize("role", [Membership.Role.AGENT, Membership.Role.SUPERVISOR])
def test_non_admins_are_refused_everywhere(client, department, channel, promise, office, ladder, role):
    user = factories.UserFactory(username=f"not-admin-{role}")
    factories.MembershipFactory(user=user, department=department, role=role)
    client.force_login(user)
    before = LogEntry.objects.count()

    for method, url in every_settings_url(channel, office, ladder):
        response = getattr(client, method)(
            url, promise_post(promise, first_response_minutes=1) if method == "post" else {}
        )
        assert response.status_code == 403, (method, url)

    assert LogEntry.objects.count() == before
    promise.refresh_from_db()
    assert promise.first_response_minutes == 60
    assert "Settings</a>" not in client.get(reverse("desk:queue")).content.decode()


def test_signed_out_visitors_are_sent_to_sign_in(client, channel, promise, office, ladder):
    for method, url in every_settings_url(channel, office, ladder):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and reverse("account_login") in response.url, (method, url)


def test_unknown_rows_are_404_for_admins(desk, channel, promise, ladder, other_department):
    foreign = EscalationPath.objects.create(
        from_department=other_department,
        to_department=channel.department,
        trigger=EscalationPath.Trigger.SLA_BREACH,
    )
    assert desk.get(reverse("settings:channel", args=[999999])).status_code == 404
    assert desk.get(reverse("settings:calendar", args=[999999])).status_code == 404
    # a ladder of another department is not this channel's to change
    response = desk.post(reverse("settings:ladder_save", args=[channel.pk, foreign.pk]), ladder_post(foreign))
    assert response.status_code == 404


def test_admins_find_settings_in_the_top_bar(desk):
    assert f'href="{reverse("settings:index")}"' in desk.get(reverse("desk:queue")).content.decode()


# --- The preview -----------------------------------------------------------------------------------------


def preview(desk, channel, arrival: str, **extra):
    response = desk.get(reverse("settings:preview", args=[channel.pk]), {"arrival": arrival, **extra})
    assert response.status_code == 200
    return text_of(response)


def test_a_tweet_on_friday_evening_is_due_on_monday_morning(desk, channel, promise):
    # Friday 4 December 2026, 17:55 in London: 5 minutes are left before 18:00; Saturday and
    # Sunday have no hours; the other 55 run from 09:00 on Monday.
    text = preview(desk, channel, "2026-12-04T17:55")

    assert "A tweet arriving Friday 4 Dec 17:55 is due Monday 7 Dec 09:55" in text
    # At risk after 75% of the hour: 45 minutes, so 40 on Monday.
    assert "at risk from Monday 09:40" in text


def test_christmas_and_the_boxing_day_holiday_are_skipped(desk, channel, promise):
    # Thursday 24 December 2026, 17:55: 5 minutes before closing; Friday 25th is Christmas Day,
    # then the weekend, then Monday 28th is the Boxing Day holiday (the 26th is a Saturday), so
    # the remaining 55 minutes run from 09:00 on Tuesday 29th.
    text = preview(desk, channel, "2026-12-24T17:55")

    assert "arriving Thursday 24 Dec 17:55 is due Tuesday 29 Dec 09:55" in text


def test_an_extra_closed_day_and_the_lunch_break_are_skipped(desk, channel, promise, office, admin_user):
    # Tuesday 8 December 2026, 12:00: 30 minutes until lunch at 12:30, 30 more from 13:30.
    assert "arriving Tuesday 8 Dec 12:00 is due Tuesday 8 Dec 14:00" in preview(
        desk, channel, "2026-12-08T12:00"
    )

    promise_settings.calendar_save(
        calendar=office,
        actor=admin_user,
        name=office.name,
        time_zone=office.time_zone,
        always_open=False,
        weekly_hours=office.weekly_hours,
        holiday_country="GB",
        extra_closed_dates=["2026-12-08"],
    )

    # Closed all Tuesday: the hour runs from 09:00 on Wednesday.
    assert "arriving Tuesday 8 Dec 12:00 is due Wednesday 9 Dec 10:00" in preview(
        desk, channel, "2026-12-08T12:00"
    )


def test_times_are_the_calendars_own(desk, admin_user, channel, promise, office):
    promise_settings.calendar_save(
        calendar=office,
        actor=admin_user,
        name=office.name,
        time_zone="America/New_York",
        always_open=False,
        weekly_hours=office.weekly_hours,
        holiday_country="US",
        extra_closed_dates=[],
    )

    # 17:55 in New York on Friday: Monday 09:55 in New York (14:55 UTC), shown as New York's.
    text = preview(desk, channel, "2026-12-04T17:55")

    assert "arriving Friday 4 Dec 17:55 is due Monday 7 Dec 09:55 (America/New_York" in text


def test_the_preview_uses_the_forms_unsaved_values(desk, channel, promise):
    # 120 minutes: 5 on Friday, 115 from 09:00 on Monday.
    text = preview(desk, channel, "2026-12-04T17:55", **promise_post(promise, first_response_minutes=120))
    assert "is due Monday 7 Dec 10:55" in text

    # The urgent override (15 minutes): 5 on Friday, 10 on Monday.
    text = preview(desk, channel, "2026-12-04T17:55", priority="urgent", **promise_post(promise))
    assert "is due Monday 7 Dec 09:10" in text

    # No calendar: 24/7, an hour later in the display zone (UTC).
    text = preview(desk, channel, "2026-12-04T17:55", **promise_post(promise, calendar=""))
    assert "is due Friday 4 Dec 18:55 (UTC" in text

    # Nothing was saved.
    promise.refresh_from_db()
    assert promise.first_response_minutes == 60 and promise.calendar is not None

    text = preview(desk, channel, "2026-12-04T17:55", **promise_post(promise, at_risk_ratio="2"))
    assert "Fix the promise to preview it: At-risk share must be between 0.01 and 0.99" in text


def test_the_preview_is_what_a_case_gets(channel, promise, customer, identity):
    channel.refresh_from_db()  # the fixture's channel holds the promise it was made with
    arrival = datetime(2026, 12, 24, 17, 55, tzinfo=LONDON)
    case = services.case_open(customer=customer, channel=channel, subject="Delayed parcel")
    services.message_add(
        case=case,
        direction="in",
        kind="post",
        text="Where is it?",
        channel=channel,
        identity=identity,
        sent_at=arrival,
    )
    case.refresh_from_db()

    shown = promise_settings.due_preview(promise=promise, arrival=arrival)

    assert shown.first.due == case.first_response_due_at == datetime(2026, 12, 29, 9, 55, tzinfo=UTC)
    assert shown.first.at_risk == case.response_risk_at
    assert [c.due for c in shown.clocks][2] == case.resolution_due_at


def test_the_channel_page_previews_now_by_default_and_the_chosen_time_without_javascript(
    desk, channel, promise
):
    # Saturday 5 December 2026, 11:00 in London: closed, so the hour runs from Monday 09:00.
    with time_machine.travel(datetime(2026, 12, 5, 11, 0, 30, tzinfo=LONDON), tick=False):
        page = desk.get(reverse("settings:channel", args=[channel.pk]))
    assert 'value="2026-12-05T11:00"' in page.content.decode()
    assert "A tweet arriving Saturday 5 Dec 11:00 is due Monday 7 Dec 10:00" in text_of(page)

    chosen = desk.get(reverse("settings:channel", args=[channel.pk]), {"arrival": "2026-12-04T17:55"})
    assert "is due Monday 7 Dec 09:55" in text_of(chosen)

    bad = desk.get(reverse("settings:channel", args=[channel.pk]), {"arrival": "Friday"})
    assert bad.status_code == 200
    assert "Arrival: a date and time such as 2026-12-04 17:55." in text_of(bad)


# --- Query counts ------------------------------------------------------------------------------------------


def more_config(department, office, admin_user, count: int) -> None:
    """``count`` more channels with promises, and changes on record for each."""
    for n in range(count):
        extra = factories.ChannelFactory(
            kind="email", name=f"Mailbox {n}", slug=f"mailbox-{n}", department=department
        )
        for minutes in (100, 90):
            promise_settings.promise_save(
                channel=extra,
                actor=admin_user,
                calendar=office,
                first_response_minutes=minutes,
                next_response_minutes=minutes,
                resolution_minutes=900,
                at_risk_ratio=Decimal("0.75"),
                priority_overrides={},
            )


@pytest.mark.parametrize("count", [1, 12])
def test_settings_index_query_count(
    desk, department, office, admin_user, promise, django_assert_num_queries, count
):
    more_config(department, office, admin_user, count)

    with django_assert_num_queries(INDEX_QUERIES):
        response = desk.get(reverse("settings:index"))

    assert response.status_code == 200
    assert f"Mailbox {count - 1}" in text_of(response)


@pytest.mark.parametrize("count", [1, 12])
def test_channel_page_query_count(
    desk, channel, promise, ladder, department, office, admin_user, django_assert_num_queries, count
):
    more_config(department, office, admin_user, count)
    for minutes in range(count):
        promise_settings.ladder_save(
            path=ladder,
            actor=admin_user,
            warn_after_minutes=minutes,
            notify_after_minutes=15,
            escalate_after_minutes=30,
        )

    with django_assert_num_queries(CHANNEL_QUERIES):
        response = desk.get(reverse("settings:channel", args=[channel.pk]), {"arrival": "2026-12-04T17:55"})

    assert response.status_code == 200
    assert "is due Monday 7 Dec 09:55" in text_of(response)


@pytest.mark.parametrize("count", [1, 12])
def test_calendar_page_query_count(desk, office, department, admin_user, django_assert_num_queries, count):
    more_config(department, office, admin_user, count)

    with django_assert_num_queries(CALENDAR_QUERIES):
        response = desk.get(reverse("settings:calendar", args=[office.pk]))

    assert response.status_code == 200
    assert f"Mailbox {count - 1}" in text_of(response)


def test_preview_query_count(desk, channel, promise, ladder, django_assert_num_queries):
    with django_assert_num_queries(PREVIEW_QUERIES):
        desk.get(reverse("settings:preview", args=[channel.pk]), {"arrival": "2026-12-04T17:55"})
    with django_assert_num_queries(PREVIEW_WITH_FORM_QUERIES):
        desk.get(
            reverse("settings:preview", args=[channel.pk]),
            {"arrival": "2026-12-04T17:55", **promise_post(promise)},
        )
