"""Settings the API's OpenAPI schema is written with. Plain values, no imports: settings may read it."""

# Merged into SPECTACULAR_SETTINGS (config/settings.py); the schema tests apply them when the
# settings lack them.
SCHEMA_SETTINGS = {
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "ENUM_NAME_OVERRIDES": {
        "CaseStatusEnum": "cases.models.Case.Status",
        "MessageKindEnum": "cases.models.Message.Kind",
        "CaseEventKindEnum": "cases.models.CaseEvent.Kind",
        "PlatformEnum": "connectors.models.Channel.Kind",
        "WebhookEventEnum": "connectors.models.WebhookEvent",
        "WebhookDeliveryStatusEnum": "connectors.models.WebhookDelivery.Status",
    },
}
