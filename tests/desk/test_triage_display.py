"""The triage breakdown of a customer message is visible on the case page."""

from cases import ingest
from tests.test_ingest import tweet


def test_case_page_shows_why_triage_scored_a_message(client, agent, channel):
    message = ingest.ingest(
        channel=channel,
        inbound=tweet("t-angry", text="@brand this is awful!! I want a refund, cancel my contract"),
    )
    client.force_login(agent)

    response = client.get(f"/desk/cases/{message.case.reference}/")

    body = response.content.decode()
    assert response.status_code == 200
    assert f"Triage score {message.triage['score']}" in body
    assert "refund" in body  # the intent keyword that was found
    assert "sentiment -" in body  # the negative sentiment, as the reasons say it
