"""API views: read endpoints are a selector plus a filterset; each action validates its input,
calls one service and answers with the updated object. Rules come from ``cases.permissions``.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from cases import canned, drafts, escalation, permissions, reports, services, suggestion_services, triage
from cases import selectors as case_selectors
from cases.errors import ServiceError
from cases.models import Message
from connectors import api_tokens, webhooks_out
from connectors.authentication import ApiTokenAuthentication
from connectors.models import ApiToken, WebhookDelivery
from customers import services as customer_services
from customers.errors import CustomerRefused
from customers.models import Customer, Identity, IdentitySuggestion

from . import filters, selectors, serializers
from .exceptions import error_body, exception_handler
from .pagination import CasePagination, KeysetPagination, MessagePagination, NewestFirstPagination
from .permissions import (
    CanLinkIdentities,
    CanMergeCustomers,
    CanSeeReports,
    IsAdmin,
    IsMember,
    MembersReadAdminsWrite,
    SessionOnly,
)
from .renderers import CsvRenderer
from .schema import CaselineAutoSchema
from .throttling import TokenCreateRateThrottle, TokenRateThrottle, TokenWriteRateThrottle

WRITE_METHODS = ["get", "post", "patch", "delete", "head", "options"]


class ApiMixin:
    """What every endpoint shares: token or session auth, token rate limits, keyset pages,
    filters on lists only, the one error shape."""

    authentication_classes = (ApiTokenAuthentication, SessionAuthentication)
    permission_classes = (IsAuthenticated,)
    throttle_classes = (TokenRateThrottle, TokenWriteRateThrottle)
    filter_backends = (DjangoFilterBackend,)
    parser_classes = (JSONParser,)
    renderer_classes = (JSONRenderer,)
    pagination_class = KeysetPagination
    schema = CaselineAutoSchema()
    lookup_value_converter = "int"

    def get_exception_handler(self):
        return exception_handler

    def initial(self, request, *args, **kwargs):
        # Taken before anything is read: a reply drafted against this response sends it back
        # as ``draft_started_at``, and what was written after it counts as unseen.
        self.read_at = timezone.now()
        super().initial(request, *args, **kwargs)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "read_at": getattr(self, "read_at", None)}

    def filter_queryset(self, queryset):
        # Filters narrow lists; a detail or an action finds its object by id alone.
        if getattr(self, "action", "list") != "list":
            return queryset
        return super().filter_queryset(queryset)

    @property
    def fake(self) -> bool:
        """True while drf-spectacular inspects the view to write the schema."""
        return getattr(self, "swagger_fake_view", False)


# --- Customers and identities ---------------------------------------------------------------------


class CustomerViewSet(ApiMixin, viewsets.ReadOnlyModelViewSet):
    """Customers the user may see (those with a case the user may see; admins: all), with their
    identities; link an identity, merge another customer in, undo a merge."""

    permission_classes = (IsAuthenticated, IsMember)
    serializer_class = serializers.CustomerSerializer
    filterset_class = filters.CustomerFilterSet

    def get_queryset(self):
        return selectors.customer_list(user=self.request.user)

    def _customer_response(self, customer_id: int) -> Response:
        return Response(
            self.get_serializer(selectors.customer_list(user=self.request.user).get(pk=customer_id)).data
        )

    def _visible(self, queryset, pk: int, field: str):
        found = queryset.filter(pk=pk).first()
        if found is None:
            raise ServiceError(
                f"There is no such {field.removesuffix('_id')}.", code="does_not_exist", field=field
            )
        return found

    @extend_schema(
        request=serializers.IdentityLinkInputSerializer, responses={200: serializers.CustomerSerializer}
    )
    @action(detail=True, methods=["post"])
    def link(self, request, pk=None):
        """Move an identity to this customer (an agent's link: the customer it leaves keeps its cases)."""
        customer = self.get_object()
        data = _valid(serializers.IdentityLinkInputSerializer, request)
        identity = self._visible(
            selectors.identity_list(user=request.user), data["identity_id"], "identity_id"
        )
        customer_services.identity_link(
            identity=identity, customer=customer, actor=request.user, source=Identity.LinkSource.AGENT
        )
        return self._customer_response(customer.pk)

    @extend_schema(
        request=serializers.CustomerMergeInputSerializer, responses={200: serializers.CustomerSerializer}
    )
    @action(detail=True, methods=["post"], permission_classes=(IsAuthenticated, CanMergeCustomers))
    def merge(self, request, pk=None):
        """Merge another customer into this one: its identities and cases move here (supervisors, admins)."""
        customer = self.get_object()
        data = _valid(serializers.CustomerMergeInputSerializer, request)
        source = self._visible(selectors.visible_customers(user=request.user), data["source_id"], "source_id")
        services.customer_merge(source=source, target=customer, actor=request.user)
        return self._customer_response(customer.pk)

    @extend_schema(
        request=serializers.CustomerUnmergeInputSerializer, responses={200: serializers.CustomerSerializer}
    )
    @action(detail=True, methods=["post"], permission_classes=(IsAuthenticated, CanMergeCustomers))
    def unmerge(self, request, pk=None):
        """Undo the merge of ``source_id`` into this customer: its identities and the cases the merge
        moved go back to it. Answers with the restored customer (supervisors, admins)."""
        customer = self.get_object()
        data = _valid(serializers.CustomerUnmergeInputSerializer, request)
        source = Customer.objects.filter(pk=data["source_id"], merged_into=customer).first()
        if source is None:
            raise ServiceError(
                "That customer was not merged into this one.", code="does_not_exist", field="source_id"
            )
        restored = services.customer_unmerge(source=source, actor=request.user, reason=data["reason"])
        return Response(
            self.get_serializer(selectors.customer_list(user=self.request.user).get(pk=restored.pk)).data
        )


class IdentityViewSet(ApiMixin, viewsets.ReadOnlyModelViewSet):
    """Platform identities (look one up by ``kind`` and ``platform_id`` in any spelling)."""

    permission_classes = (IsAuthenticated, IsMember)
    serializer_class = serializers.IdentitySerializer
    filterset_class = filters.IdentityFilterSet

    def get_queryset(self):
        return selectors.identity_list(user=self.request.user)


class SuggestionRefused(ServiceError):
    """A suggested link that cannot be decided as asked: decided already, or its customer was merged
    into another since (``already_decided`` / ``customer_merged``)."""

    code = "already_decided"
    status = 409


def _decide_suggestion(decide, suggestion) -> None:
    try:
        decide(suggestion)
    except CustomerRefused as exc:
        code = "already_decided" if exc.field == "suggestion" else "customer_merged"
        raise SuggestionRefused(exc.reason, code=code) from exc


class CustomerSuggestionsView(ApiMixin, generics.ListAPIView):
    """One customer's suggested links, newest first (``?status=open``: those waiting for an agent)."""

    permission_classes = (IsAuthenticated, IsMember)
    serializer_class = serializers.IdentitySuggestionSerializer
    filterset_class = filters.IdentitySuggestionFilterSet
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        if self.fake:
            return IdentitySuggestion.objects.none()
        customer = get_object_or_404(
            selectors.visible_customers(user=self.request.user), pk=self.kwargs["id"]
        )
        return selectors.customer_suggestion_list(customer=customer)


class IdentitySuggestionViewSet(ApiMixin, viewsets.ReadOnlyModelViewSet):
    """Suggested links of the customers the user may see: an e-mail address or phone number a
    customer wrote that is another customer's identity. Nothing is linked until an agent accepts;
    dismissed, the pair is never suggested again."""

    permission_classes = (IsAuthenticated, IsMember)
    serializer_class = serializers.IdentitySuggestionSerializer
    filterset_class = filters.IdentitySuggestionFilterSet
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        return selectors.identity_suggestion_list(user=self.request.user)

    def _decided(self, pk: int) -> Response:
        return Response(self.get_serializer(self.get_queryset().get(pk=pk)).data)

    @extend_schema(request=None, responses={200: serializers.IdentitySuggestionSerializer})
    @action(detail=True, methods=["post"], permission_classes=(IsAuthenticated, CanLinkIdentities))
    def accept(self, request, pk=None):
        """Make it the identity of the customer who wrote it (link source ``suggested``, linked by
        you): another customer's identity is linked (the customer it leaves keeps its cases:
        merging is a separate act); a new contact detail (``identity`` null) is created on the
        customer, or linked if it has become someone's identity since. The pages of both
        customers' open cases are told (their customer panels refresh)."""
        suggestion = self.get_object()
        _decide_suggestion(
            lambda s: suggestion_services.suggestion_accept(suggestion=s, actor=request.user),
            suggestion,
        )
        return self._decided(suggestion.pk)

    @extend_schema(request=None, responses={200: serializers.IdentitySuggestionSerializer})
    @action(detail=True, methods=["post"], permission_classes=(IsAuthenticated, CanLinkIdentities))
    def dismiss(self, request, pk=None):
        """Not theirs: nothing is linked or created, and the value is not suggested to this customer again."""
        suggestion = self.get_object()
        _decide_suggestion(
            lambda s: suggestion_services.suggestion_dismiss(suggestion=s, actor=request.user),
            suggestion,
        )
        return self._decided(suggestion.pk)


# --- Cases ----------------------------------------------------------------------------------------


def _valid(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _case_action(serializer_class, summary: str):
    return extend_schema(
        summary=summary, request=serializer_class, responses={200: serializers.CaseDetailSerializer}
    )


class CaseViewSet(ApiMixin, viewsets.ReadOnlyModelViewSet):
    """Cases the user may see, soonest due first. Actions call the case services and answer with
    the updated case; a case the user may not see is a 404, one they may not change a 403."""

    pagination_class = CasePagination
    filterset_class = filters.CaseFilterSet

    def get_queryset(self):
        if self.action in ("list", "canned_replies"):  # no followers shown
            return selectors.case_list(user=self.request.user)
        return selectors.case_detail(user=self.request.user)

    def get_serializer_class(self):
        return serializers.CaseSerializer if self.action == "list" else serializers.CaseDetailSerializer

    def _act(self, serializer_class, run) -> Response:
        case = self.get_object()
        data = _valid(serializer_class, self.request)
        run(case, data)
        return Response(
            serializers.CaseDetailSerializer(
                selectors.case_for_response(case_id=case.pk), context=self.get_serializer_context()
            ).data
        )

    @_case_action(serializers.ReplyInputSerializer, "Reply to the customer")
    @action(detail=True, methods=["post"])
    def reply(self, request, pk=None):
        """Queue a reply on a channel; it is sent after commit. 409 ``stale_draft`` when the customer or a colleague wrote after ``draft_started_at``; 409 ``draft_locked`` while a colleague holds the case's reply lock."""

        def run(case, data):
            identity = data["identity"]
            if identity is not None and identity.customer_id != case.customer_id:
                raise ServiceError("That identity is not this case's customer's.", field="identity_id")
            drafts.draft_send(
                case=case,
                author=request.user,
                channel=data["channel"],
                text=data["text"],
                is_public=data["is_public"],
                identity=identity,
                draft_started_at=data["draft_started_at"],
            )

        return self._act(serializers.ReplyInputSerializer, run)

    @_case_action(serializers.NoteInputSerializer, "Add an internal note")
    @action(detail=True, methods=["post"])
    def note(self, request, pk=None):
        """Add an internal note (never shown to the customer; stops no clock)."""
        return self._act(
            serializers.NoteInputSerializer,
            lambda case, data: services.note_add(case=case, author=request.user, text=data["text"]),
        )

    @_case_action(serializers.CallInputSerializer, "Log a phone call")
    @action(detail=True, methods=["post"], url_path="log-call")
    def log_call(self, request, pk=None):
        """Record a phone call had with the customer."""
        return self._act(
            serializers.CallInputSerializer,
            lambda case, data: services.call_log(
                case=case,
                author=request.user,
                direction=data["direction"],
                number=data["number"],
                duration_seconds=data["duration_seconds"],
                notes=data["notes"],
                channel=data["channel"],
                at=data["at"],
            ),
        )

    @_case_action(serializers.AssignInputSerializer, "Assign (or unassign) the case")
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        """Give the case to a member of its department, or unassign it (``assignee_id: null``)."""
        return self._act(
            serializers.AssignInputSerializer,
            lambda case, data: services.case_assign(
                case=case, assignee=data["assignee"], actor=request.user, reason=data["reason"]
            ),
        )

    @_case_action(serializers.EmptyInputSerializer, "Claim an unassigned case")
    @action(detail=True, methods=["post"])
    def claim(self, request, pk=None):
        """Take an unassigned case; 409 ``already_claimed`` when someone has it."""
        return self._act(
            serializers.EmptyInputSerializer,
            lambda case, data: services.case_claim(case=case, actor=request.user),
        )

    @_case_action(serializers.TransferInputSerializer, "Transfer to another department")
    @action(detail=True, methods=["post"])
    def transfer(self, request, pk=None):
        """Move the case to another department with a reason (agents along an escalation path only)."""
        return self._act(
            serializers.TransferInputSerializer,
            lambda case, data: services.case_transfer(
                case=case,
                to_department=data["to_department"],
                actor=request.user,
                reason=data["reason"],
                note=data["note"],
            ),
        )

    @_case_action(serializers.EscalateInputSerializer, "Escalate along the department's path")
    @action(detail=True, methods=["post"])
    def escalate(self, request, pk=None):
        """Move the case along its department's escalation path, with a reason."""
        return self._act(
            serializers.EscalateInputSerializer,
            lambda case, data: escalation.case_escalate(
                case=case, actor=request.user, reason=data["reason"], note=data["note"]
            ),
        )

    @_case_action(serializers.EscalateInputSerializer, "Hand the case back to the department it came from")
    @action(detail=True, methods=["post"], url_path="hand-back")
    def hand_back(self, request, pk=None):
        """Return a handed-over case to the department it came from, with a reason."""
        return self._act(
            serializers.EscalateInputSerializer,
            lambda case, data: escalation.case_handback(
                case=case, actor=request.user, reason=data["reason"], note=data["note"]
            ),
        )

    @_case_action(serializers.AcceptInputSerializer, "Accept a hand-over")
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        """Accept a hand-over to your department (and claim the case if nobody has it)."""
        return self._act(
            serializers.AcceptInputSerializer,
            lambda case, data: escalation.case_accept(case=case, actor=request.user, note=data["note"]),
        )

    @_case_action(serializers.StatusInputSerializer, "Change the status")
    @action(detail=True, methods=["post"], url_path="set-status")
    def set_status(self, request, pk=None):
        """Change the status; resolving stops the clocks, reopening restarts what is owed."""
        return self._act(
            serializers.StatusInputSerializer,
            lambda case, data: services.case_set_status(
                case=case, status=data["status"], actor=request.user, reason=data["reason"]
            ),
        )

    @_case_action(serializers.PriorityInputSerializer, "Change the priority")
    @action(detail=True, methods=["post"], url_path="set-priority")
    def set_priority(self, request, pk=None):
        """Change the priority."""
        return self._act(
            serializers.PriorityInputSerializer,
            lambda case, data: services.case_set_priority(
                case=case, priority=data["priority"], actor=request.user, reason=data["reason"]
            ),
        )

    @_case_action(serializers.MoveToPrivateInputSerializer, "Ask the customer to continue privately")
    @action(detail=True, methods=["post"], url_path="move-to-private")
    def move_to_private(self, request, pk=None):
        """Post a public reply inviting the customer to a direct message or an e-mail, quoting the
        case reference; the case then waits on the customer. 409 ``draft_locked`` while a colleague
        holds the case's reply lock."""
        return self._act(
            serializers.MoveToPrivateInputSerializer,
            lambda case, data: drafts.draft_move_to_private(
                case=case,
                actor=request.user,
                channel=data["channel"],
                private_channel_kind=data["private_channel_kind"],
            ),
        )

    @_case_action(serializers.ReasonInputSerializer, "Monitor: no answer needed")
    @action(detail=True, methods=["post"])
    def monitor(self, request, pk=None):
        """The case needs no answer (venting, praise): it goes to monitoring, without a clock."""
        return self._act(
            serializers.ReasonInputSerializer,
            lambda case, data: triage.case_monitor(case=case, actor=request.user, reason=data["reason"]),
        )

    @_case_action(serializers.ReasonInputSerializer, "Respond: a monitored case needs an answer")
    @action(detail=True, methods=["post"])
    def respond(self, request, pk=None):
        """A monitored case needs an answer after all: it opens and its clocks start."""
        return self._act(
            serializers.ReasonInputSerializer,
            lambda case, data: triage.case_respond(case=case, actor=request.user, reason=data["reason"]),
        )

    @_case_action(serializers.CaseMergeInputSerializer, "Merge another case into this one")
    @action(detail=True, methods=["post"])
    def merge(self, request, pk=None):
        """Merge case ``source_id`` into this one: its messages (with attachments) and events move
        here, the source is closed, both get a ``merged`` event, this case's clocks are recomputed.
        Both cases must be ones you work on; a reason is required."""

        def run(case, data):
            source = selectors.visible_cases(user=request.user).filter(pk=data["source_id"]).first()
            if source is None:
                raise ServiceError("There is no such case.", code="does_not_exist", field="source_id")
            services.case_merge(source=source, target=case, actor=request.user, reason=data["reason"])

        return self._act(serializers.CaseMergeInputSerializer, run)

    @extend_schema(
        summary="Canned replies for this case, filled in",
        responses={200: serializers.CannedReplyFilledListSerializer},
    )
    @action(
        detail=True, methods=["get"], url_path="canned-replies", filter_backends=(), pagination_class=None
    )
    def canned_replies(self, request, pk=None):
        """The active canned replies offered on this case (its department's and everyone's), by
        title, with the placeholders filled for this customer, case and you: the desk's list."""
        case = self.get_object()
        rows = [
            {
                "id": reply.pk,
                "title": reply.title,
                "channel_kind": reply.channel_kind,
                "text": canned.canned_render(reply=reply, case=case, agent=request.user),
            }
            for reply in canned.canned_for_case(case=case)
        ]
        return Response({"results": rows})

    @extend_schema(
        summary="Take over a colleague's reply",
        request=serializers.TakeOverInputSerializer,
        responses={200: serializers.DraftLockSerializer},
    )
    @action(detail=True, methods=["post"], url_path="take-over-reply")
    def take_over_reply(self, request, pk=None):
        """Take the case's reply lock from whoever holds it (supervisors of the case's department,
        admins): their send is refused from now on, and a ``draft_taken`` event names both."""
        case = self.get_object()
        data = _valid(serializers.TakeOverInputSerializer, request)
        lock = drafts.draft_lock_take_over(case=case, actor=request.user, reason=data["reason"])
        return Response(
            {
                "case_id": case.pk,
                "user_id": lock.user_id,
                "name": lock.name,
                "since": lock.since,
                "taken_from": lock.taken_from,
            }
        )

    @extend_schema(
        summary="Reassign many cases at once",
        request=serializers.BulkReassignInputSerializer,
        responses={200: serializers.CaseListSerializer},
    )
    @action(detail=False, methods=["post"], url_path="bulk-reassign")
    def bulk_reassign(self, request):
        """Move cases to a department and/or give them to someone, all or none (the supervisor board)."""
        data = _valid(serializers.BulkReassignInputSerializer, request)
        ids = sorted(set(data["case_ids"]))
        cases = list(selectors.visible_cases(user=request.user).filter(pk__in=ids))
        if len(cases) != len(ids):
            raise ServiceError("Some of those cases do not exist.", code="does_not_exist", field="case_ids")
        escalation.case_bulk_reassign(
            cases=cases,
            to_department=data["to_department"],
            assignee=data["assignee"],
            actor=request.user,
            reason=data["reason"],
            note=data["note"],
        )
        rows = selectors.cases_for_response(case_ids=ids)
        return Response({"results": serializers.CaseSerializer(rows, many=True).data})


class CaseTimelineView(ApiMixin, generics.ListAPIView):
    """One case's messages in time order (notes, calls and both directions)."""

    serializer_class = serializers.MessageSerializer
    pagination_class = MessagePagination
    filter_backends = ()

    def get_queryset(self):
        if self.fake:
            return Message.objects.none()
        case = get_object_or_404(selectors.visible_cases(user=self.request.user), pk=self.kwargs["id"])
        return case_selectors.case_timeline(case=case)


class MessageViewSet(ApiMixin, viewsets.ReadOnlyModelViewSet):
    """Messages of the cases the user may see, in time order."""

    serializer_class = serializers.MessageSerializer
    pagination_class = MessagePagination
    filterset_class = filters.MessageFilterSet

    def get_queryset(self):
        return selectors.message_list(user=self.request.user)

    @extend_schema(
        summary="Split a message off into a new case",
        request=serializers.ReasonInputSerializer,
        responses={201: serializers.CaseDetailSerializer},
    )
    @action(detail=True, methods=["post"])
    def split(self, request, pk=None):
        """Move a customer's message, and the later messages answering it in its thread, to a new
        case for the same customer and department; answers with the new case. A reason is required."""
        message = self.get_object()
        data = _valid(serializers.ReasonInputSerializer, request)
        case = services.message_split(message=message, actor=request.user, reason=data["reason"])
        body = serializers.CaseDetailSerializer(
            selectors.case_for_response(case_id=case.pk), context=self.get_serializer_context()
        ).data
        return Response(body, status=status.HTTP_201_CREATED)


class CaseEventViewSet(ApiMixin, viewsets.ReadOnlyModelViewSet):
    """The audit trail of the cases the user may see: who changed what, when and why."""

    serializer_class = serializers.CaseEventSerializer
    filterset_class = filters.CaseEventFilterSet

    def get_queryset(self):
        return selectors.case_event_list(user=self.request.user)


# --- Configuration --------------------------------------------------------------------------------


class ConfigViewSet(ApiMixin, viewsets.ModelViewSet):
    """Members read the configuration; admins change it."""

    permission_classes = (IsAuthenticated, MembersReadAdminsWrite)
    http_method_names = WRITE_METHODS


class DepartmentViewSet(ConfigViewSet):
    serializer_class = serializers.DepartmentSerializer
    filterset_class = filters.DepartmentFilterSet

    def get_queryset(self):
        return selectors.department_list()


class MembershipViewSet(ConfigViewSet):
    """Admins see every membership; others those of their own departments."""

    serializer_class = serializers.MembershipSerializer
    filterset_class = filters.MembershipFilterSet

    def get_queryset(self):
        return selectors.membership_list(user=self.request.user)


class ChannelViewSet(ConfigViewSet):
    """The company's accounts. No secret is ever shown; the names of their variables only to admins."""

    serializer_class = serializers.ChannelSerializer
    filterset_class = filters.ChannelFilterSet

    def get_queryset(self):
        return selectors.channel_list()


class CalendarViewSet(ConfigViewSet):
    serializer_class = serializers.CalendarSerializer
    filterset_class = filters.CalendarFilterSet

    def get_queryset(self):
        return selectors.calendar_list()


class ServicePromiseViewSet(ConfigViewSet):
    serializer_class = serializers.ServicePromiseSerializer
    filterset_class = filters.ServicePromiseFilterSet

    def get_queryset(self):
        return selectors.promise_list()


class EscalationPathViewSet(ConfigViewSet):
    serializer_class = serializers.EscalationPathSerializer
    filterset_class = filters.EscalationPathFilterSet

    def get_queryset(self):
        return selectors.escalation_path_list()


class CannedReplyViewSet(ConfigViewSet):
    """Canned replies: members list those offered to their departments; admins manage them all."""

    serializer_class = serializers.CannedReplySerializer
    filterset_class = filters.CannedReplyFilterSet

    def get_queryset(self):
        return selectors.canned_reply_list(user=self.request.user)


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


# --- Personal tokens ------------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(
        request=serializers.ApiTokenCreateSerializer, responses={201: serializers.ApiTokenCreatedSerializer}
    ),
    destroy=extend_schema(summary="Revoke a token"),
)
class ApiTokenViewSet(
    ApiMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The signed-in user's API tokens: create (the key is shown once), list (prefix only), revoke."""

    permission_classes = (IsAuthenticated, SessionOnly)
    throttle_classes = (*ApiMixin.throttle_classes, TokenCreateRateThrottle)
    serializer_class = serializers.ApiTokenSerializer
    filterset_class = filters.ApiTokenFilterSet

    def get_queryset(self):
        if self.fake:
            return ApiToken.objects.none()
        return selectors.token_list(user=self.request.user)

    def create(self, request, *args, **kwargs):
        data = _valid(serializers.ApiTokenCreateSerializer, request)
        token, key = api_tokens.api_token_create(user=request.user, name=data["name"], scope=data["scope"])
        body = serializers.ApiTokenCreatedSerializer(token).data | {"key": key}
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        api_tokens.api_token_revoke(token=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Outbound webhooks ----------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(
        request=serializers.WebhookSubscriptionSerializer,
        responses={201: serializers.WebhookSubscriptionCreatedSerializer},
    ),
)
class WebhookSubscriptionViewSet(ApiMixin, viewsets.ModelViewSet):
    """Admins' webhook subscriptions. The signing secret is shown on creation and rotation only."""

    permission_classes = (IsAuthenticated, IsAdmin)
    serializer_class = serializers.WebhookSubscriptionSerializer
    http_method_names = WRITE_METHODS
    filterset_class = filters.WebhookSubscriptionFilterSet

    def get_queryset(self):
        return selectors.webhook_subscription_list()

    def create(self, request, *args, **kwargs):
        data = _valid(serializers.WebhookSubscriptionSerializer, request)
        subscription, secret = webhooks_out.webhook_subscription_create(
            name=data["name"], url=data["url"], event_types=data["event_types"], actor=request.user
        )
        body = serializers.WebhookSubscriptionCreatedSerializer(subscription).data | {"secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        subscription = self.get_object()
        serializer = self.get_serializer(subscription, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        updated = webhooks_out.webhook_subscription_update(
            subscription=subscription,
            actor=request.user,
            name=data.get("name"),
            url=data.get("url"),
            event_types=data.get("event_types"),
            is_active=data.get("is_active"),
        )
        return Response(self.get_serializer(updated).data)

    def destroy(self, request, *args, **kwargs):
        webhooks_out.webhook_subscription_delete(subscription=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: serializers.WebhookSecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """Replace the signing secret at once; the new one is shown this once."""
        _, secret = webhooks_out.webhook_subscription_rotate_secret(
            subscription=self.get_object(), actor=request.user
        )
        return Response({"secret": secret})


class WebhookDeliveryListView(ApiMixin, generics.ListAPIView):
    """A subscription's delivery log, newest first: status codes, errors, attempts."""

    permission_classes = (IsAuthenticated, IsAdmin)
    serializer_class = serializers.WebhookDeliverySerializer
    filterset_class = filters.WebhookDeliveryFilterSet

    pagination_class = NewestFirstPagination

    def get_queryset(self):
        if self.fake:
            return WebhookDelivery.objects.none()
        subscription = get_object_or_404(selectors.webhook_subscription_list(), pk=self.kwargs["id"])
        return selectors.webhook_delivery_list(subscription=subscription)


@csrf_exempt  # it changes nothing, whatever the method
def not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    """Any URL under the API that names no endpoint."""
    return JsonResponse(error_body(code="not_found", message="Not found."), status=404)
