from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"
    verbose_name = "Channels and connectors"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from . import webhooks_out
        from .models import WebhookSubscription

        # Keep the cached list of active webhook subscriptions exact, whoever changes one.
        for name, signal in (("saved", post_save), ("deleted", post_delete)):
            signal.connect(
                webhooks_out.subscriptions_changed,
                sender=WebhookSubscription,
                dispatch_uid=f"webhooks-{name}",
            )
