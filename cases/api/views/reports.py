"""Incidents and reports: incidents with their cases and the reply to all of them, and the
promise report and the report charts' figures (JSON or CSV) for those who may see reports.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from cases import permissions, reports, triage
from cases.errors import ServiceError
from cases.reports import figures

from .. import filters, selectors, serializers
from ..pagination import NewestFirstPagination
from ..permissions import CanSeeReports, IsMember
from ..renderers import CsvRenderer
from .base import ApiMixin, _valid

# --- Incidents and reports ------------------------------------------------------------------------


class IncidentViewSet(ApiMixin, viewsets.ReadOnlyModelViewSet):
    """Surges of customer messages on a channel of the user's departments, newest first, with the
    cases found in them; answer them all at once, or close one (supervisors, admins)."""

    permission_classes = (IsAuthenticated, IsMember)
    serializer_class = serializers.IncidentSerializer
    filterset_class = filters.IncidentFilterSet
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        return selectors.incident_list(user=self.request.user)

    def _incident_response(self, pk: int) -> Response:
        return Response(self.get_serializer(selectors.incident_list(user=self.request.user).get(pk=pk)).data)

    @extend_schema(
        summary="Reply on every open case of the incident",
        request=serializers.IncidentReplyInputSerializer,
        responses={200: serializers.IncidentSerializer},
    )
    @action(detail=True, methods=["post"])
    def reply(self, request, pk=None):
        """One public reply queued on every open case of the incident, all or none: 403 if you
        may not work one of them."""
        incident = self.get_object()
        data = _valid(serializers.IncidentReplyInputSerializer, request)
        text = data["text"].strip()
        if not text:
            raise ServiceError("A reply cannot be empty.", field="text")
        triage.incident_reply(incident=incident, author=request.user, text=text)
        return self._incident_response(incident.pk)

    @extend_schema(
        summary="Close the incident", request=None, responses={200: serializers.IncidentSerializer}
    )
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        """Close the incident (supervisors, admins); a later surge on the channel opens a new one."""
        incident = self.get_object()
        triage.incident_close(incident=incident, actor=request.user)
        return self._incident_response(incident.pk)


class PromiseReportView(ApiMixin, generics.GenericAPIView):
    """Promises kept and broken, first-response times (median, 90th percentile) and cases at risk,
    per channel or department, for the departments you supervise (admins: all). ``?format=csv``
    (or ``Accept: text/csv``) answers with a CSV file."""

    permission_classes = (IsAuthenticated, CanSeeReports)
    renderer_classes = (JSONRenderer, CsvRenderer)
    filter_backends = ()
    pagination_class = None
    serializer_class = serializers.PromiseReportSerializer
    csv_header = tuple(serializers.ReportRowSerializer().fields)

    @extend_schema(
        parameters=[serializers.ReportQuerySerializer],
        responses={
            (200, "application/json"): serializers.PromiseReportSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    def get(self, request, *args, **kwargs):
        query = serializers.ReportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        zone = timezone.get_current_timezone()
        report = reports.promise_report(
            start=datetime.combine(data["start"], time.min, tzinfo=zone),
            end=datetime.combine(data["end"] + timedelta(days=1), time.min, tzinfo=zone),
            group_by=data["group_by"],
            department_ids=permissions.report_department_ids(request.user),
        )
        body = {
            "start": report.start,
            "end": report.end,
            "group_by": report.group_by,
            "rows": [serializers.report_row(row) for row in report.rows],
        }
        response = Response(serializers.PromiseReportSerializer(body).data)
        if isinstance(request.accepted_renderer, CsvRenderer):
            response["Content-Disposition"] = (
                f'attachment; filename="promises-{data["start"]}-{data["end"]}-{data["group_by"]}.csv"'
            )
        return response

    def handle_exception(self, exc):
        # Errors keep the one JSON error shape, whatever format the report was asked in.
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return super().handle_exception(exc)


class FigureReportView(PromiseReportView):
    """One figure of the desk's report charts, the rows the desk's page draws and its CSV holds:
    ``promises`` (kept and broken per channel per day), ``first-response`` (cases per
    first-response time bucket), ``volume`` (new cases per channel, weekday and hour),
    ``backlog`` (opened, resolved or closed, open and breaches per day) and
    ``department-clock`` (stays with each department against its handling target). Days and
    hours are counted in the desk's time zone. ``?format=csv`` (or ``Accept: text/csv``)
    answers with a CSV file."""

    serializer_class = serializers.FigureSerializer

    @extend_schema(
        parameters=[
            serializers.FigureQuerySerializer,
            OpenApiParameter("figure", str, OpenApiParameter.PATH, enum=list(figures.FIGURES)),
        ],
        responses={
            (200, "application/json"): serializers.FigureSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    def get(self, request, *args, figure: str = "", **kwargs):
        if figure not in figures.FIGURES:
            raise NotFound(f"No such figure; the figures are {', '.join(figures.FIGURES)}.")
        scope = permissions.report_department_ids(request.user)
        query = serializers.FigureQuerySerializer(
            data=request.query_params, context={"department_ids": scope}
        )
        query.is_valid(raise_exception=True)
        data = query.validated_data
        zone = timezone.get_current_timezone()
        _function, self.csv_header = figures.FIGURES[figure]
        rows = figures.figure_rows(
            figure,
            start=datetime.combine(data["start"], time.min, tzinfo=zone),
            end=datetime.combine(data["end"] + timedelta(days=1), time.min, tzinfo=zone),
            zone=zone,
            department_ids={data["department"]} if data.get("department") is not None else scope,
        )
        body = {
            "figure": figure,
            "start": data["start"],
            "end": data["end"],
            "columns": list(self.csv_header),
            "rows": [
                {
                    key: value.isoformat() if isinstance(value, date) else value
                    for key, value in zip(self.csv_header, row, strict=True)
                }
                for row in rows
            ],
        }
        response = Response(serializers.FigureSerializer(body).data)
        if isinstance(request.accepted_renderer, CsvRenderer):
            response["Content-Disposition"] = (
                f'attachment; filename="{figure}-{data["start"]}-{data["end"]}.csv"'
            )
        return response
