"""Incidents and reports: an incident with its cases and the input of replying to all of them,
and the promise report's query and rows (``report_row``).
"""

from __future__ import annotations

from rest_framework import serializers

from cases.models import Incident

# --- Incidents and reports -----------------------------------------------------------------------


class IncidentSerializer(serializers.ModelSerializer):
    channel_id = serializers.IntegerField(read_only=True)
    case_ids = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = (
            "id",
            "channel_id",
            "status",
            "title",
            "window_start",
            "window_end",
            "mention_count",
            "baseline",
            "detected_at",
            "closed_at",
            "case_ids",
        )
        read_only_fields = fields

    def get_case_ids(self, incident) -> list[int]:
        return sorted(case.pk for case in incident.cases.all())


class IncidentReplyInputSerializer(serializers.Serializer):
    text = serializers.CharField(
        max_length=20000, help_text="One public reply, queued on every open case of the incident."
    )


class ReportQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First day (default: six days before today).")
    end = serializers.DateField(required=False, help_text="Last day, inclusive (default: today).")
    group_by = serializers.ChoiceField(choices=["channel", "department"], default="channel")

    def validate(self, attrs):
        from datetime import timedelta

        from django.utils import timezone

        end = attrs.get("end") or timezone.localdate()
        start = attrs.get("start") or end - timedelta(days=6)
        if end < start:
            raise serializers.ValidationError({"end": "The end date is before the start date."})
        if (end - start).days > 366:
            raise serializers.ValidationError({"end": "A report covers at most a year."})
        return {**attrs, "start": start, "end": end}


class ReportRowSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="The channel's or the department's name.")
    responded = serializers.IntegerField(help_text="Cases whose first response was sent in the period.")
    kept = serializers.IntegerField(help_text="Of those, first-response promises kept.")
    broken = serializers.IntegerField(help_text="Of those, first-response promises broken.")
    kept_share = serializers.FloatField(allow_null=True, help_text="kept / responded (null when none).")
    breaches = serializers.IntegerField(help_text="Promise breaches of any clock recorded in the period.")
    at_risk_now = serializers.IntegerField(help_text="Open cases at risk or breached at this moment.")
    median_first_response_seconds = serializers.FloatField(allow_null=True)
    p90_first_response_seconds = serializers.FloatField(allow_null=True)


class PromiseReportSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Exclusive.")
    group_by = serializers.ChoiceField(choices=["channel", "department"])
    rows = ReportRowSerializer(many=True)


def report_row(row) -> dict:
    def seconds(value):
        return value.total_seconds() if value is not None else None

    return {
        "label": row.label,
        "responded": row.responded,
        "kept": row.kept,
        "broken": row.broken,
        "kept_share": row.kept_share,
        "breaches": row.breaches,
        "at_risk_now": row.at_risk_now,
        "median_first_response_seconds": seconds(row.median_first_response),
        "p90_first_response_seconds": seconds(row.p90_first_response),
    }


class FigureQuerySerializer(serializers.Serializer):
    """The chart figures' period and scope: the same as the desk's report page."""

    start = serializers.DateField(required=False, help_text="First day (default: 13 days before today).")
    end = serializers.DateField(required=False, help_text="Last day, inclusive (default: today).")
    department = serializers.IntegerField(
        required=False, help_text="One department's id (default: every department you may report on)."
    )

    def validate(self, attrs):
        from datetime import timedelta

        from django.utils import timezone

        end = attrs.get("end") or timezone.localdate()
        start = attrs.get("start") or end - timedelta(days=13)
        if end < start:
            raise serializers.ValidationError({"end": "The end date is before the start date."})
        if (end - start).days > 365:
            raise serializers.ValidationError({"end": "A report covers at most a year."})
        scope = self.context["department_ids"]
        department = attrs.get("department")
        if department is not None and scope is not None and department not in scope:
            raise serializers.ValidationError({"department": "Not a department you may report on."})
        return {**attrs, "start": start, "end": end}


class FigureSerializer(serializers.Serializer):
    figure = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField(help_text="Last day, inclusive.")
    columns = serializers.ListField(
        child=serializers.CharField(), help_text="The names of each row's values."
    )
    rows = serializers.ListField(
        child=serializers.DictField(),
        help_text="One object per row, keyed by the columns (days as ISO dates).",
    )
