"""The cases app's models, one module per job: who works where (organisation), what is
promised (promises), the case and its timeline, triage and incidents, canned replies, satisfaction surveys, saved views,
urgent signals (alerts, on call, pages) and channel health."""

from .canned import CANNED_PLACEHOLDERS, CannedReply
from .case import (
    QUEUE_NO_DUE,
    QUEUE_WORK_STATUSES,
    REFERENCE_ALPHABET,
    REFERENCE_LENGTH,
    REFERENCE_PATTERN,
    Case,
    new_reference,
)
from .csat import SatisfactionSurvey
from .organisation import Department, EscalationPath, Membership
from .preferences import DeskPreferences
from .promises import BusinessCalendar, ServicePromise
from .signals import AlertSource, ChannelHealthAlert, KnownCustomerRule, MonitoringAlert, OnCallShift, Page
from .timeline import Attachment, CaseEvent, Message
from .topics import TopicState, TopicWeek
from .triage import Incident, TriageSettings, default_intent_keywords, default_monitor_categories
from .views import SavedView

__all__ = [
    "CANNED_PLACEHOLDERS",
    "QUEUE_NO_DUE",
    "QUEUE_WORK_STATUSES",
    "REFERENCE_ALPHABET",
    "REFERENCE_LENGTH",
    "REFERENCE_PATTERN",
    "AlertSource",
    "Attachment",
    "BusinessCalendar",
    "CannedReply",
    "Case",
    "CaseEvent",
    "ChannelHealthAlert",
    "Department",
    "DeskPreferences",
    "EscalationPath",
    "Incident",
    "KnownCustomerRule",
    "Membership",
    "Message",
    "MonitoringAlert",
    "OnCallShift",
    "Page",
    "SatisfactionSurvey",
    "SavedView",
    "ServicePromise",
    "TopicState",
    "TopicWeek",
    "TriageSettings",
    "default_intent_keywords",
    "default_monitor_categories",
    "new_reference",
]
