"""The monitoring-alert door: Alertmanager (bearer token) and generic JSON (HMAC of the body),
stored first and processed by a task; forged credentials refused and nothing stored; a body
that cannot be read stored and marked failed, never a 500."""

from __future__ import annotations

import json

from cases.models import MonitoringAlert
from connectors.models import InboundEvent
from tests.signals.conftest import SECRET, alertmanager_body, post_alert, signed


def test_an_alertmanager_alert_with_the_bearer_token_is_stored_and_processed(
    client, alert_source, django_capture_on_commit_callbacks
):
    body = alertmanager_body()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_alert(client, alert_source, body, HTTP_AUTHORIZATION=f"Bearer {SECRET}")

    assert response.status_code == 200
    event = InboundEvent.objects.get(provider="alerts")
    assert bytes(event.body) == body
    assert event.status == InboundEvent.Status.PROCESSED
    assert "authorization" not in event.headers
    alert = MonitoringAlert.objects.get()
    assert (alert.source, alert.fingerprint, alert.status) == (alert_source, "f1", "firing")
    assert alert.title == "Login API down"
    assert alert.severity == "critical"
    assert alert.labels["service"] == "login"
    assert alert.ends_at is None  # Alertmanager's zero time: still firing
    assert alert.event == event


def test_a_resolved_report_updates_the_same_alert(client, alert_source, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_alert(client, alert_source, alertmanager_body(), HTTP_AUTHORIZATION=f"Bearer {SECRET}")
        post_alert(
            client,
            alert_source,
            alertmanager_body(status="resolved", ends_at="2027-12-26T11:00:00Z"),
            HTTP_AUTHORIZATION=f"Bearer {SECRET}",
        )

    alert = MonitoringAlert.objects.get()
    assert alert.status == "resolved"
    assert alert.ends_at.isoformat() == "2027-12-26T11:00:00+00:00"


def test_a_generic_alert_signed_with_hmac_is_accepted(
    client, alert_source, django_capture_on_commit_callbacks
):
    body = json.dumps(
        {
            "id": "db-1",
            "title": "Database replica lag",
            "status": "firing",
            "severity": "warning",
            "starts_at": "2027-12-26T09:00:00+00:00",
            "description": "Replica is 5 minutes behind",
            "labels": {"team": "platform"},
        }
    ).encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_alert(client, alert_source, body, HTTP_X_CASELINE_SIGNATURE=signed(body))

    assert response.status_code == 200
    alert = MonitoringAlert.objects.get()
    assert (alert.fingerprint, alert.title, alert.severity) == ("db-1", "Database replica lag", "warning")
    assert alert.labels == {"team": "platform"}


def test_forged_or_missing_credentials_are_refused_and_nothing_is_stored(client, alert_source):
    body = alertmanager_body()

    wrong_token = post_alert(client, alert_source, body, HTTP_AUTHORIZATION="Bearer guessed")
    wrong_signature = post_alert(client, alert_source, body, HTTP_X_CASELINE_SIGNATURE=signed(body, "other"))
    none = post_alert(client, alert_source, body)

    assert (wrong_token.status_code, wrong_signature.status_code, none.status_code) == (403, 403, 401)
    assert not InboundEvent.objects.exists()
    assert not MonitoringAlert.objects.exists()


def test_a_signature_over_another_body_is_refused(client, alert_source):
    response = post_alert(client, alert_source, alertmanager_body(), HTTP_X_CASELINE_SIGNATURE=signed(b"{}"))

    assert response.status_code == 403
    assert not InboundEvent.objects.exists()


def test_a_malformed_body_is_stored_and_marked_failed(
    client, alert_source, django_capture_on_commit_callbacks
):
    bodies = [
        b"not json {",
        json.dumps({"alerts": [{"status": "burning", "startsAt": "2027-12-26T10:00:00Z"}]}).encode(),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        responses = [post_alert(client, alert_source, b, HTTP_X_CASELINE_SIGNATURE=signed(b)) for b in bodies]

    assert [r.status_code for r in responses] == [200, 200]
    events = list(InboundEvent.objects.filter(provider="alerts").order_by("pk"))
    assert [e.status for e in events] == ["failed", "failed"]
    assert [bytes(e.body) for e in events] == bodies
    assert "not JSON" in events[0].error
    assert "alerts[0].status" in events[1].error
    assert not MonitoringAlert.objects.exists()


def test_an_unknown_source_is_404(client, db):
    assert (
        client.post("/webhooks/alerts/nobody/", data=b"{}", content_type="application/json").status_code
        == 404
    )


def test_the_inbox_batch_leaves_alert_events_to_their_own_task(alert_source):
    from connectors import alerts, inbox

    event = alerts.alert_event_store(source=alert_source, body=alertmanager_body())

    inbox.inbound_events_process_batch()
    event.refresh_from_db()
    assert event.status == "pending"

    alerts.alert_event_process(event_id=event.pk)
    event.refresh_from_db()
    assert event.status == "processed"
    assert MonitoringAlert.objects.count() == 1


def test_replay_inbox_processes_alert_events_through_their_own_door(alert_source):
    from connectors import alerts, inbox

    good = alerts.alert_event_store(source=alert_source, body=alertmanager_body())
    bad = alerts.alert_event_store(source=alert_source, body=b"[1, 2]")

    inbox.inbound_event_process(event_id=good.pk)
    inbox.inbound_event_process(event_id=bad.pk)

    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == "processed"
    assert bad.status == "failed"
    assert "[0] must be an object" in bad.error
    assert MonitoringAlert.objects.count() == 1


def test_the_beat_tasks_take_pending_alerts_and_run_the_sweeps(alert_source):
    from cases import tasks as case_tasks
    from connectors import alerts
    from connectors import tasks as connector_tasks

    alerts.alert_event_store(source=alert_source, body=alertmanager_body())

    assert connector_tasks.process_pending_alerts() == 1
    assert connector_tasks.process_pending_alerts() == 0
    assert MonitoringAlert.objects.count() == 1
    assert case_tasks.known_customers_sweep() == 0
    assert case_tasks.channel_health_sweep() == {"opened": 0, "cleared": 0}
