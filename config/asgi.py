"""ASGI entry point: HTTP through Django, websockets through Channels.

Webhook POSTs (``/webhooks/<slug>/``) skip the page middleware: ``webhook_fast_path``
verifies, stores and answers them straight from ASGI (see ``connectors.views``).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

# Consumers import models: only after Django is set up.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from channels_app.routing import websocket_urlpatterns  # noqa: E402
from connectors.views import webhook_fast_path  # noqa: E402

application = webhook_fast_path(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
