"""Meta's data-deletion callback: ``POST /webhooks/meta/data-deletion/``.

Meta posts a form field ``signed_request`` (``<signature>.<payload>``, base64url; the
signature is HMAC-SHA256 of the encoded payload keyed with the app secret, the payload
JSON with the ``user_id``). The app secret is the one the Facebook, Instagram and
WhatsApp channels name for their webhooks (``Channel.secret_env["app_secret"]``); any
of them may sign. The answer is what Meta documents:
``{"url": <status page>, "confirmation_code": <code>}``; the erasure itself runs after
commit (``cases.privacy.meta_deletion_request``).

Never a 500: malformed input is a 400 naming the field, a forged signature a 403, a
missing app secret or a database outage a 503 (Meta retries).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from cases import privacy

logger = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, field: str | None = None) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "field": field}}, status=status)


@csrf_exempt
@require_POST
def data_deletion(request: HttpRequest) -> JsonResponse:
    try:
        signed_request = request.POST.get("signed_request")
    except RequestDataTooBig:
        return _error(413, "too_large", "Request body too large.")
    except (MultiPartParserError, UnicodeDecodeError, ValueError):
        return _error(400, "invalid", "The body is not a readable form.", "signed_request")
    try:
        app_secrets = privacy.meta_app_secrets()
        if not app_secrets:
            logger.error("Meta data-deletion callback: no Meta channel names an app secret")
            return _error(503, "not_configured", "No Meta app secret is configured.")
        payload = privacy.meta_signed_request_parse(signed_request, app_secrets=app_secrets)
        erasure = privacy.meta_deletion_request(user_id=payload["user_id"])
    except privacy.SignedRequestError as exc:
        if exc.status == 403:
            logger.warning("Meta data-deletion callback refused: %s", exc.message)
        return _error(exc.status, exc.code, exc.message, exc.field)
    except DatabaseError:
        logger.exception("Meta data-deletion callback: database unavailable")
        return _error(503, "unavailable", "Try again later.")
    path = reverse("privacy:deletion-status", kwargs={"code": erasure.confirmation_code})
    return JsonResponse({"url": settings.PUBLIC_URL + path, "confirmation_code": erasure.confirmation_code})
