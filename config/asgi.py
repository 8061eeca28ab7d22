"""ASGI entry point: HTTP through Django, websockets through Channels.

Webhook POSTs (``/webhooks/<slug>/``) skip the page middleware: ``webhook_fast_path``
verifies, stores and answers them straight from ASGI (see ``connectors.views``).
"""

import gc
import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

# Consumers import models: only after Django is set up.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from channels_app.routing import websocket_urlpatterns  # noqa: E402
from connectors.views import webhook_fast_path  # noqa: E402

# What start-up made (modules, settings, URL patterns, templates) lives as long as the process:
# frozen, it is left out of every full collection, which otherwise walks it all while a
# thousand sockets wait (pauses of 100-250 ms in bench/live.py, 50-60 ms frozen). Not under
# pytest: the suite runs an event loop per test in one process, and with start-up frozen a
# torn-down loop's channel-layer receive was left pending (a hang at a test's teardown).
# Full collections are also made ten times rarer (the third threshold, 10 by default): with a
# thousand sockets they came every 3 s and set the p99 push latency (106-130 ms in
# bench/live.py; 25-56 ms with this), at the same peak memory over a 30 s run.
if "pytest" not in sys.modules:
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 100)

application = webhook_fast_path(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
