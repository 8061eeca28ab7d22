"""Privacy pages and API: export a customer's data, erase it, and the public status page of an
erasure request. Thin: the rules are ``cases.permissions.can_export_customer`` /
``can_erase_customer``, the work is ``cases.privacy``.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from customers.models import Customer, ErasureRequest

from . import permissions, privacy, selectors
from .api.permissions import IsMember
from .api.selectors import visible_customers
from .api.views import ApiMixin
from .errors import NotPermitted, ServiceError
from .models import Case, Message

EXPORT_FORMATS = ("json", "zip")


def _export_response(customer: Customer, export_format: str) -> HttpResponse:
    if export_format == "zip":
        response = HttpResponse(
            privacy.customer_export_zip(customer=customer), content_type="application/zip"
        )
    else:
        document = privacy.customer_export(customer=customer)
        response = HttpResponse(
            privacy.export_json_bytes(document), content_type="application/json; charset=utf-8"
        )
    response["Content-Disposition"] = (
        f'attachment; filename="{privacy.export_filename(customer, export_format)}"'
    )
    response["Cache-Control"] = "no-store"
    return response


# --- Desk pages ------------------------------------------------------------------------------------


class EraseForm(forms.Form):
    confirm = forms.CharField(
        label=gettext_lazy("Type the customer's number to confirm"),
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric"}),
    )

    def __init__(self, *args, customer: Customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer = customer

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip().lstrip("#")
        if value != str(self.customer.pk):
            raise forms.ValidationError(
                _("Type %(number)s to confirm the erasure of this customer.") % {"number": self.customer.pk}
            )
        return value


def _customer_or_404(request: HttpRequest, pk: int) -> Customer:
    """The customer, if the user may export or erase it; 404 when they may not even see it."""
    customer = selectors.customer_for_page(user=request.user, customer_id=pk)
    if customer is None:
        raise Http404("No such customer.")
    if not (
        permissions.can_export_customer(request.user, customer)
        or permissions.can_erase_customer(request.user)
    ):
        raise PermissionDenied("Only supervisors and admins export customers' data.")
    return customer


def _page(request: HttpRequest, customer: Customer, form: EraseForm, status: int = 200) -> HttpResponse:
    cases = Case.objects.filter(customer=customer)
    context = {
        "customer": customer,
        "identity_count": customer.identities.count(),
        "case_count": cases.count(),
        "message_count": Message.objects.filter(case__in=cases).count(),
        "can_export": permissions.can_export_customer(request.user, customer),
        "can_erase": permissions.can_erase_customer(request.user),
        "form": form,
        "erasures": _erasures_of(customer),
    }
    return render(request, "privacy/customer.html", context, status=status)


def _erasures_of(customer: Customer) -> list[ErasureRequest]:
    requests = ErasureRequest.objects.select_related("requested_by")
    if connection.vendor == "postgresql":
        return list(requests.filter(customer_ids__contains=[customer.pk])[:20])
    # SQLite has no JSON containment: look through the recent ones.
    return [r for r in requests[:500] if customer.pk in (r.customer_ids or [])][:20]


@login_required
@require_GET
def customer_privacy(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _customer_or_404(request, pk)
    return _page(request, customer, EraseForm(customer=customer))


@login_required
@require_GET
def customer_export(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _customer_or_404(request, pk)
    if not permissions.can_export_customer(request.user, customer):
        raise PermissionDenied("Only supervisors and admins export customers' data.")
    export_format = request.GET.get("format", "json")
    if export_format not in EXPORT_FORMATS:
        return HttpResponse(
            f"format: '{export_format}' is not one of json, zip.", status=400, content_type="text/plain"
        )
    return _export_response(customer, export_format)


@login_required
@require_POST
def customer_erase(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _customer_or_404(request, pk)
    if not permissions.can_erase_customer(request.user):
        raise PermissionDenied("Only admins erase customers.")
    form = EraseForm(request.POST, customer=customer)
    if not form.is_valid():
        return _page(request, customer, form, status=400)
    try:
        erasure = privacy.customer_erase(
            customer=customer, actor=request.user, source=ErasureRequest.Source.DESK
        )
    except ServiceError as exc:
        form.add_error(None, exc.message)
        return _page(request, customer, form, status=exc.status)
    messages.success(
        request,
        _("Customer #%(number)s's personal data was erased (confirmation %(code)s).")
        % {"number": customer.pk, "code": erasure.confirmation_code},
    )
    return redirect("privacy:customer", pk=customer.pk)


@require_GET
def deletion_status(request: HttpRequest, code: str) -> HttpResponse:
    """Public: what became of an erasure request, by its confirmation code. Shows no personal data."""
    erasure = get_object_or_404(ErasureRequest, confirmation_code=code)
    return render(request, "privacy/deletion_status.html", {"erasure": erasure})


# --- API -------------------------------------------------------------------------------------------


class JsonOnlyNegotiation(DefaultContentNegotiation):
    """JSON, always: ``?format=`` chooses the export's format here, not a DRF renderer."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ErasureInputSerializer(serializers.Serializer):
    confirm = serializers.IntegerField(help_text="The customer's id again, to confirm the erasure.")


class ErasureSerializer(serializers.ModelSerializer):
    class Meta:
        model = ErasureRequest
        fields = [
            "confirmation_code",
            "source",
            "status",
            "customer_ids",
            "counts",
            "created_at",
            "completed_at",
        ]
        read_only_fields = fields


class _PrivacyApiView(ApiMixin, APIView):
    permission_classes = (*ApiMixin.permission_classes, IsMember)
    content_negotiation_class = JsonOnlyNegotiation

    def customer(self, request, customer_id: int) -> Customer:
        customer = visible_customers(user=request.user).filter(pk=customer_id).first()
        if customer is None:
            raise Http404("No such customer.")
        return customer


class CustomerExportApiView(_PrivacyApiView):
    @extend_schema(
        operation_id="customers_export",
        tags=["customers"],
        summary="Export everything held about a customer",
        description=(
            "The customer and the customers merged into it, every identity with its provenance, "
            "cases, messages, attachments, case events, identity suggestions, merges and raw inbound "
            "events: a JSON document, or with `format=zip` a ZIP of `customer.json` and the attachment "
            "files. Supervisors (for a customer they can see) and admins."
        ),
        parameters=[
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=list(EXPORT_FORMATS),
                default="json",
                description="`json` (the default) or `zip`.",
            )
        ],
        responses={
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT, description="The export document."
            ),
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY, description="`customer.json` and `attachments/<id>-<name>`."
            ),
        },
    )
    def get(self, request, id: int):
        customer = self.customer(request, id)
        if not permissions.can_export_customer(request.user, customer):
            raise NotPermitted("Only supervisors and admins export customers' data.")
        export_format = request.query_params.get("format", "json")
        if export_format not in EXPORT_FORMATS:
            raise ServiceError(
                f"'{export_format}' is not one of json, zip.", code="invalid_choice", field="format"
            )
        if export_format == "zip":
            return _export_response(customer, "zip")
        response = Response(privacy.customer_export(customer=customer))
        response["Cache-Control"] = "no-store"
        return response


class CustomerEraseApiView(_PrivacyApiView):
    @extend_schema(
        operation_id="customers_erase",
        tags=["customers"],
        summary="Erase a customer's personal data",
        description=(
            "Removes or pseudonymises the customer's personal data (and that of customers merged "
            "into it) everywhere; cases and their audit trail stay, pseudonymised. Cannot be undone. "
            "Admins only; `confirm` must repeat the customer's id. 409 `already_erased` or `merged`."
        ),
        request=ErasureInputSerializer,
        responses={200: ErasureSerializer},
    )
    def post(self, request, id: int):
        customer = self.customer(request, id)
        if not permissions.can_erase_customer(request.user):
            raise NotPermitted("Only admins erase customers.")
        data = ErasureInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["confirm"] != customer.pk:
            raise ServiceError(
                f"confirm must be {customer.pk}, this customer's id.", code="invalid", field="confirm"
            )
        erasure = privacy.customer_erase(
            customer=customer, actor=request.user, source=ErasureRequest.Source.API
        )
        return Response(ErasureSerializer(erasure).data)
