"""A connector whose ``send`` answers from a script, for outbox tests that are about
the outbox (the platform connectors have their own tests against fake HTTP servers)."""

from connectors.base import SendError, SendResult

script: list = []
sent: list = []


def send(message, channel):
    outcome = script.pop(0) if script else "ok"
    if isinstance(outcome, SendError):
        raise outcome
    if isinstance(outcome, Exception):
        raise outcome
    sent.append(message.pk)
    return SendResult(external_id=f"ext-{message.pk}-{len(sent)}")
