"""Working time on business calendars: the arithmetic every service clock stands on."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cases.models import BusinessCalendar
from cases.sla import add_working_minutes, is_closed_day, working_time_between

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = {str(d): [["09:00", "17:00"]] for d in range(1, 6)}


def calendar(**kwargs) -> BusinessCalendar:
    # Unsaved: the arithmetic reads only the instance.
    fields = {"name": "Office", "time_zone": "Europe/London", "weekly_hours": WEEKDAYS}
    return BusinessCalendar(**{**fields, **kwargs})


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def test_no_calendar_and_always_open_count_wall_clock_time():
    start = datetime(2025, 3, 29, 12, 0, tzinfo=UTC)
    assert add_working_minutes(start, 90, None) == start + timedelta(minutes=90)
    assert add_working_minutes(start, 90, calendar(always_open=True, weekly_hours={})) == start + timedelta(
        minutes=90
    )


def test_inside_one_span():
    assert add_working_minutes(london(2025, 1, 7, 10, 0), 45, calendar()) == london(2025, 1, 7, 10, 45)


def test_overnight_carries_the_rest_to_next_morning():
    # Tuesday 16:30 + 60 working minutes: 30 today, 30 from Wednesday's opening
    assert add_working_minutes(london(2025, 1, 7, 16, 30), 60, calendar()) == london(2025, 1, 8, 9, 30)


def test_weekend_is_skipped():
    # Friday 16:00 + 120: one hour Friday, one hour Monday
    assert add_working_minutes(london(2025, 1, 10, 16, 0), 120, calendar()) == london(2025, 1, 13, 10, 0)


def test_start_in_closed_time_begins_at_the_next_opening():
    assert add_working_minutes(london(2025, 1, 11, 14, 0), 30, calendar()) == london(2025, 1, 13, 9, 30)
    assert add_working_minutes(london(2025, 1, 7, 6, 0), 0, calendar()) == london(2025, 1, 7, 9, 0)


def test_exactly_at_closing_lands_on_closing_time():
    assert add_working_minutes(london(2025, 1, 7, 16, 0), 60, calendar()) == london(2025, 1, 7, 17, 0)


def test_public_holidays_from_the_holidays_package_are_closed():
    # Easter 2025 in England: Good Friday 18 April and Easter Monday 21 April
    office = calendar(holiday_country="GB-ENG")
    assert is_closed_day(office, datetime(2025, 4, 18).date())
    assert add_working_minutes(london(2025, 4, 17, 16, 0), 120, office) == london(2025, 4, 22, 10, 0)


def test_holidays_follow_the_calendars_country():
    # 4 July is a US holiday and an ordinary Friday in England
    us = calendar(time_zone="America/New_York", holiday_country="US")
    gb = calendar(holiday_country="GB")
    start = datetime(2025, 7, 3, 16, 30, tzinfo=NEW_YORK)
    assert add_working_minutes(start, 60, us) == datetime(2025, 7, 7, 9, 30, tzinfo=NEW_YORK)
    assert add_working_minutes(london(2025, 7, 3, 16, 30), 60, gb) == london(2025, 7, 4, 9, 30)


def test_dates_the_admin_closes_are_skipped():
    office = calendar(extra_closed_dates=["2025-06-13"])  # a Friday
    assert add_working_minutes(london(2025, 6, 12, 16, 30), 60, office) == london(2025, 6, 16, 9, 30)


def test_split_shift_skips_the_break():
    split = calendar(weekly_hours={"1": [["13:00", "17:00"], ["09:00", "12:00"]]})  # unsorted on purpose
    assert add_working_minutes(london(2025, 1, 6, 11, 30), 60, split) == london(2025, 1, 6, 13, 30)
    # from the break itself, time starts when the afternoon shift does
    assert add_working_minutes(london(2025, 1, 6, 12, 15), 10, split) == london(2025, 1, 6, 13, 10)
    # and the next Monday when the afternoon is used up
    assert add_working_minutes(london(2025, 1, 6, 16, 0), 90, split) == london(2025, 1, 13, 9, 30)


def test_span_ending_at_24_00_runs_to_midnight_and_joins_the_next_day():
    evenings = calendar(weekly_hours={"1": [["18:00", "24:00"]], "2": [["00:00", "02:00"]]})
    assert add_working_minutes(london(2025, 1, 6, 23, 30), 60, evenings) == london(2025, 1, 7, 0, 30)
    assert add_working_minutes(london(2025, 1, 6, 23, 30), 150, evenings) == london(2025, 1, 7, 2, 0)
    # nothing after Tuesday 02:00 until the next Monday evening
    assert add_working_minutes(london(2025, 1, 6, 23, 30), 151, evenings) == london(2025, 1, 13, 18, 1)


def test_night_shift_past_midnight_counts_from_the_day_before():
    nights = calendar(weekly_hours={"1": [["22:00", "06:00"]]})
    # Tuesday 03:00 is inside Monday's night shift
    assert add_working_minutes(london(2025, 1, 7, 3, 0), 60, nights) == london(2025, 1, 7, 4, 0)
    assert add_working_minutes(london(2025, 1, 7, 5, 30), 60, nights) == london(2025, 1, 13, 22, 30)


def test_dst_spring_forward_day_is_23_hours_long():
    # Europe/London: 30 March 2025 01:00 GMT becomes 02:00 BST
    round_the_clock = calendar(weekly_hours={str(d): [["00:00", "24:00"]] for d in range(1, 8)})
    start = datetime(2025, 3, 29, 12, 0, tzinfo=UTC)
    due = add_working_minutes(start, 24 * 60, round_the_clock)
    assert due == datetime(2025, 3, 30, 12, 0, tzinfo=UTC)  # 24 real hours, i.e. 13:00 BST
    assert due.astimezone(LONDON).hour == 13


def test_dst_span_across_the_missing_hour_is_one_hour_shorter():
    early = calendar(weekly_hours={"7": [["00:00", "03:00"]], "1": [["09:00", "17:00"]]})
    # Sunday 00:00-03:00 local on the change day is only two real hours
    start = london(2025, 3, 30, 0, 0)
    assert working_time_between(start, london(2025, 3, 30, 3, 0), early) == timedelta(hours=2)
    assert add_working_minutes(start, 150, early) == london(2025, 3, 31, 9, 30)


def test_dst_fall_back_day_is_25_hours_long():
    # 26 October 2025 02:00 BST becomes 01:00 GMT
    sundays = calendar(weekly_hours={"7": [["00:00", "24:00"]]})
    start = london(2025, 10, 26, 0, 0)
    assert working_time_between(start, london(2025, 10, 27, 0, 0), sundays) == timedelta(hours=25)


def test_office_hours_across_dst_keep_local_opening_times():
    # Friday before the change 16:00 GMT + 120 -> Monday 10:00 BST (09:00 UTC)
    due = add_working_minutes(london(2025, 3, 28, 16, 0), 120, calendar())
    assert due == datetime(2025, 3, 31, 9, 0, tzinfo=UTC)


def test_result_is_in_utc_whatever_the_input_zone():
    due = add_working_minutes(datetime(2025, 1, 7, 10, 0, tzinfo=UTC), 30, calendar())
    assert due.utcoffset() == timedelta(0)


def test_working_time_between_counts_only_open_hours():
    office = calendar()
    assert working_time_between(london(2025, 1, 10, 16, 0), london(2025, 1, 13, 10, 0), office) == timedelta(
        hours=2
    )
    assert working_time_between(london(2025, 1, 13, 10, 0), london(2025, 1, 10, 16, 0), office) == timedelta(
        0
    )


def test_adding_then_measuring_gives_back_the_minutes():
    office = calendar(
        holiday_country="GB-ENG", weekly_hours={**WEEKDAYS, "3": [["08:00", "12:00"], ["13:00", "20:00"]]}
    )
    start = london(2025, 4, 15, 11, 17)
    for minutes in (1, 59, 480, 1000, 5000):
        due = add_working_minutes(start, minutes, office)
        assert working_time_between(start, due, office) == timedelta(minutes=minutes)


def test_calendar_without_open_hours_raises():
    with pytest.raises(ValueError, match="no open hours"):
        add_working_minutes(london(2025, 1, 7, 10, 0), 10, calendar(weekly_hours={}))


def test_bad_time_of_day_is_refused():
    with pytest.raises(ValueError, match="25:00"):
        add_working_minutes(london(2025, 1, 7, 10, 0), 10, calendar(weekly_hours={"2": [["09:00", "25:00"]]}))
