"""What every endpoint shares: ``ApiMixin`` (token or session auth, token rate limits, keyset
pages, filters on lists only, the one error shape), the methods a writable endpoint allows
(``WRITE_METHODS``), the input check every action runs first (``_valid``), and ``not_found``
for any URL under the API that names no endpoint.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer

from connectors.authentication import ApiTokenAuthentication

from ..exceptions import error_body, exception_handler
from ..pagination import KeysetPagination
from ..schema import CaselineAutoSchema
from ..throttling import TokenRateThrottle, TokenWriteRateThrottle

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


def _valid(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@csrf_exempt  # it changes nothing, whatever the method
def not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    """Any URL under the API that names no endpoint."""
    return JsonResponse(error_body(code="not_found", message="Not found."), status=404)
