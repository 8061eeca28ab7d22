"""The ASGI application the fault and load tests serve: the site's, with the webhook fast path.

``config.asgi.application`` is used as it is once it serves webhooks through
``connectors.views.webhook_fast_path``; until then the wrapper is added here, so the
tests measure the path production is meant to run.
"""

from config.asgi import application as site
from connectors.views import webhook_fast_path

application = site if getattr(site, "webhook_fast_path", False) else webhook_fast_path(site)
