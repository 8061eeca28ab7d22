"""Cases: the case list and detail with every action on a case (each validates its input, calls
one service and answers with the updated case), a case's timeline, messages and case events.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cases import canned, drafts, escalation, services, triage
from cases import selectors as case_selectors
from cases.errors import ServiceError
from cases.models import Message

from .. import filters, selectors, serializers
from ..pagination import CasePagination, MessagePagination
from .base import ApiMixin, _valid

# --- Cases ----------------------------------------------------------------------------------------


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
