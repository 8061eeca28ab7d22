"""Languages: the desk in English (the default) and German, the language chooser, and the
translation files (every msgid translated, the compiled catalogue in step with its source).

The screens translated so far are listed in ROOM below; a checker reads their source and fails
on user-visible text left outside the translate tags, naming file and line."""

from __future__ import annotations

import ast
import gettext
import html
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from cases.forms import CustomerMergeForm
from cases.models import Incident
from tests import factories
from tests.desk.conftest import crossed_case, open_case

LOCALE = Path(settings.BASE_DIR) / "locale"
PO = LOCALE / "de" / "LC_MESSAGES" / "django.po"
MO = LOCALE / "de" / "LC_MESSAGES" / "django.mo"
TEMPLATES = Path(settings.BASE_DIR) / "templates"

# The templates translated so far: every one must load i18n and keep no bare text.
ROOM = sorted(
    [
        *TEMPLATES.glob("account/*.html"),
        *TEMPLATES.glob("allauth/**/*.html"),
        *TEMPLATES.glob("privacy/*.html"),
        *TEMPLATES.glob("settings/**/*.html"),
        *TEMPLATES.glob("cases/incidents/*.html"),
        *TEMPLATES.glob("cases/oncall/*.html"),
        *TEMPLATES.glob("cases/health/*.html"),
        *TEMPLATES.glob("cases/handoff/*.html"),
        *TEMPLATES.glob("cases/search/*.html"),
        TEMPLATES / "cases/customer_detail.html",
        TEMPLATES / "cases/board.html",
        TEMPLATES / "cases/partials/language_chooser.html",
    ]
)


def text_of(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


def german(client):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "de"
    return client


# --- The checker of template source ------------------------------------------------------------------


def _blank(match: re.Match) -> str:
    """The match as spaces, keeping its newlines: later line numbers stay right."""
    return re.sub(r"[^\n]", " ", match.group(0))


# Blanked before text is looked for, in this order: what is translated, what is not shown, and
# template syntax (whose strings are the translate tags' own or variables).
_NOT_TEXT = [
    re.compile(r"\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}", re.S),
    re.compile(r"\{#.*?#\}", re.S),
    re.compile(r"<!--.*?-->", re.S),
    re.compile(r"\{%\s*blocktrans(?:late)?\b.*?\{%\s*endblocktrans(?:late)?\s*%\}", re.S),
    re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I),
    # A block holding CSS classes, not words.
    re.compile(r"\{%\s*block main_class\s*%\}.*?\{%\s*endblock[^%]*%\}", re.S),
    re.compile(r"\{\{.*?\}\}", re.S),
    re.compile(r"\{%.*?%\}", re.S),
    re.compile(r"&#?\w+;"),
]
_TAG = re.compile(r"<[^>]*>", re.S)
# Attributes a reader sees or hears.
_SHOWN_ATTRIBUTE = re.compile(
    r"""\s(title|placeholder|aria-label|aria-description|alt|data-label|hx-confirm)\s*=\s*("[^"]*"|'[^']*')""",
    re.I,
)
_LETTER = re.compile(r"[^\W\d_]")


def bare_text(source: str) -> list[tuple[int, str]]:
    """(line, text) of every user-visible text in a template's source outside translate tags."""
    text = source
    for pattern in _NOT_TEXT:
        text = pattern.sub(_blank, text)
    found: list[tuple[int, str]] = []

    def tag(match: re.Match) -> str:
        for attribute in _SHOWN_ATTRIBUTE.finditer(match.group(0)):
            if _LETTER.search(attribute.group(2)):
                found.append((match.start() + attribute.start(), attribute.group(0).strip()))
        return _blank(match)

    text = _TAG.sub(tag, text)
    for run in re.finditer(r"\S+(?:[ \t]+\S+)*", text):
        if _LETTER.search(run.group(0)):
            found.append((run.start(), run.group(0)))
    return sorted((source.count("\n", 0, position) + 1, words) for position, words in found)


def test_the_checker_finds_bare_text_and_passes_translated_text():
    source = (
        '{% load i18n %}<h1>{% translate "Cases" %}</h1>\n'
        "<p>{% blocktranslate %}Hello {{ name }}{% endblocktranslate %} {{ count }} · 24/7 &rarr;</p>\n"
        "{# a note #}{% comment %}Not shown{% endcomment %}<span title=\"{% translate 'Due' %}\"></span>\n"
        "<p>Left in English</p>\n"
        '<input placeholder="e.g. 123" aria-label="{{ label }}">\n'
        '<td data-label="Case">{{ case }}</td>\n'
    )

    assert bare_text(source) == [
        (4, "Left in English"),
        (5, 'placeholder="e.g. 123"'),
        (6, 'data-label="Case"'),
    ]


def test_every_translated_template_loads_i18n_and_keeps_no_bare_text():
    assert len(ROOM) > 20  # the globs found the templates
    offending = []
    for path in ROOM:
        source = path.read_text()
        name = path.relative_to(TEMPLATES)
        offending += [f"{name}:{line}: {words}" for line, words in bare_text(source)]
        shows_words = re.search(r"\{%\s*(translate|blocktranslate)\b|_\(\"", source)
        if shows_words and not re.search(r"\{%\s*load\b[^%]*\bi18n\b", source):
            offending.append(f"{name}: translates without {{% load i18n %}}")

    assert not offending, "Text outside translate tags:\n" + "\n".join(offending)


# --- Pages in German and in English ----------------------------------------------------------------


def test_the_sign_in_page_is_english_by_default_and_german_when_chosen(client, db):
    english = client.get(reverse("account_login"))
    body = text_of(english)
    assert '<html lang="en">' in body
    assert "<h1>Sign in</h1>" in body and "Forgot your password?" in body
    assert "Keep me signed in on this computer" in body and "Anmelden" not in body

    body = text_of(german(client).get(reverse("account_login")))
    assert '<html lang="de">' in body
    assert "<h1>Anmelden</h1>" in body
    assert ">Passwort</label>" in body and ">E-Mail</label>" in body
    assert "Passwort vergessen?" in body and "Auf diesem Computer angemeldet bleiben" in body
    assert "Sign in" not in body


def test_the_browser_language_is_followed_without_a_language_prefix_in_urls(client, db):
    response = client.get(reverse("account_login"), headers={"accept-language": "de-DE,de;q=0.9"})

    assert response.status_code == 200 and response["Content-Language"] == "de"
    assert "Passwort vergessen?" in text_of(response)
    # Webhooks and desk paths keep their URLs: no redirect to /de/...
    assert client.post("/webhooks/no-such-channel/", headers={"accept-language": "de"}).status_code == 404
    desk = client.get("/desk/", headers={"accept-language": "de"})
    assert desk.status_code == 302 and desk["Location"].startswith("/accounts/login/")


def test_the_chooser_is_on_the_sign_in_page_and_in_the_top_bar(client, agent, channel):
    signed_out = client.get(reverse("account_login")).content.decode()
    assert f'action="{reverse("set_language")}"' in signed_out
    assert '<option value="de" lang="de">Deutsch</option>' in signed_out
    assert '<option value="en" lang="en" selected>English</option>' in signed_out

    client.force_login(agent)
    page = client.get(reverse("desk:customer", args=[open_case(channel=channel).customer_id]))
    body = page.content.decode()
    form = re.search(r'<form class="inline language-chooser".*?</form>', body, re.S).group(0)
    assert 'name="csrfmiddlewaretoken"' in form
    assert f'name="next" value="{page.request["PATH_INFO"]}"' in form
    assert '<button type="submit"' in form  # works without script
    assert "<script" not in form and "style=" not in form and not re.search(r"\son\w+=", form)


def test_choosing_german_switches_the_desk_and_english_switches_it_back(client, agent, channels):
    case, _ = crossed_case(channels, agent)
    client.force_login(agent)
    page = reverse("desk:customer", args=[case.customer_id])

    chosen = client.post(reverse("set_language"), {"language": "de", "next": page})

    assert chosen.status_code == 302 and chosen["Location"] == page
    assert chosen.cookies[settings.LANGUAGE_COOKIE_NAME].value == "de"
    body = text_of(client.get(page))
    assert "Identitäten" in body and "Verknüpfte" not in body
    assert '<option value="de" lang="de" selected>Deutsch</option>' in body

    client.post(reverse("set_language"), {"language": "en", "next": page})
    body = text_of(client.get(page))
    assert "Identities" in body and "Identitäten" not in body


def test_a_language_the_desk_does_not_offer_falls_back_to_english_and_next_stays_here(client, db):
    response = client.post(reverse("set_language"), {"language": "fr", "next": "https://evil.example/"})

    assert response.status_code == 302 and response["Location"] == "/"
    # Django keeps any language it has a catalogue for; the middleware offers only LANGUAGES.
    body = text_of(client.get(reverse("account_login")))
    assert '<html lang="en">' in body and "Forgot your password?" in body


def queries_of(client, url: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), text_of(response)


def test_the_customer_page_in_german_costs_no_more_queries(client, agent, channels):
    case, _ = crossed_case(channels, agent)
    client.force_login(agent)
    url = reverse("desk:customer", args=[case.customer_id])
    english_queries, english = queries_of(client, url)

    german_queries, body = queries_of(german(client), url)

    assert german_queries == english_queries
    assert "1 shown · 1 open" in english and "Identities" in english
    assert "1 angezeigt · 1 offen" in body
    assert ">Identitäten</h2>" in body
    assert f"Kunde #{case.customer_id} · " in body
    assert "Anderen Kunden mit diesem zusammenführen" not in body  # agents do not merge
    assert '<th scope="col">Zuständig</th>' in body and '<th scope="col">Eröffnet</th>' in body


def test_the_board_in_german_costs_no_more_queries(client, supervisor, channel):
    open_case(channel=channel)
    client.force_login(supervisor)
    url = reverse("desk:board")
    english_queries, english = queries_of(client, url)

    german_queries, body = queries_of(german(client), url)

    assert german_queries == english_queries
    assert "Supervisor board" in english
    assert "<h1>Supervisor-Übersicht</h1>" in body
    assert ">Fälle neu zuweisen</h2>" in body
    assert ">Ausgewählte neu zuweisen</button>" in body
    assert '<option value="" selected>Alle meine Abteilungen</option>' in body  # a form's choice


def test_settings_in_german_cost_no_more_queries(client, channel):
    admin = factories.UserFactory(username="i18n-admin", email="i18n-admin@example.test", is_staff=True)
    client.force_login(admin)
    url = reverse("settings:index")
    english_queries, english = queries_of(client, url)

    german_queries, body = queries_of(german(client), url)

    assert german_queries == english_queries
    assert "Business calendars" in english
    assert "<h1>Einstellungen</h1>" in body
    assert ">Geschäftskalender</h2>" in body and ">Letzte Änderungen</h2>" in body
    assert "60 Min." in body  # the channel's first-response target

    body = text_of(client.get(reverse("settings:channel", args=[channel.pk])))
    assert f"<h1>Servicezusage: {channel.name}</h1>" in body
    assert "Ein Tweet, eingehend am <strong>" in body  # the preview names the arrival in German
    assert '_first_response_minutes">Ziel für die erste Antwort</label>' in body  # a settings form's label
    saved = client.post(
        reverse("settings:promise_save", args=[channel.pk]),
        {
            "first_response_minutes": 30,
            "next_response_minutes": 60,
            "resolution_minutes": 480,
            "at_risk_ratio": "0.75",
        },
        follow=True,
    )
    assert f"Die Servicezusage von {channel.name} ist gespeichert." in text_of(saved)


def test_incidents_in_german_cost_no_more_queries(client, agent, channel):
    now = timezone.now()
    Incident.objects.create(
        channel=channel,
        status="open",
        title="Outage",
        window_start=now,
        window_end=now,
        mention_count=30,
        baseline=2.0,
    )
    client.force_login(agent)
    url = reverse("desk:incidents")
    english_queries, english = queries_of(client, url)

    german_queries, body = queries_of(german(client), url)

    assert german_queries == english_queries
    assert "<h1>Incidents</h1>" in english
    assert "<h1>Vorfälle</h1>" in body and "CSV exportieren" in body


def test_search_and_privacy_in_german(client, channel):
    admin = factories.UserFactory(username="i18n-root", email="i18n-root@example.test", is_staff=True)
    customer = open_case(channel=channel).customer
    client.force_login(admin)
    german(client)

    body = text_of(client.get(reverse("desk:search"), {"q": "zzqx"}))
    assert "Nichts, was Sie sehen können, passt zu „zzqx“." in body

    body = text_of(client.get(reverse("privacy:customer", args=[customer.pk])))
    assert f"Datenschutz: {customer}" in body
    assert "1 Identität · 1 Fall · 1 Nachricht in seinen Fällen" in body
    assert ">Personenbezogene Daten löschen</button>" in body

    refused = client.post(reverse("privacy:erase", args=[customer.pk]), {"confirm": "0"})
    assert refused.status_code == 400
    assert f"Geben Sie {customer.pk} ein, um die Löschung dieses Kunden zu bestätigen." in text_of(refused)


def test_form_messages_follow_the_active_language():
    form = CustomerMergeForm(data={"source": "abc"})

    with translation.override("de"):
        assert form.errors["source"] == ["Geben Sie eine Kundennummer ein, zum Beispiel 123."]
        assert form.errors["confirm"] == [
            "Setzen Sie zur Bestätigung das Häkchen: Identitäten und Fälle werden hierher verschoben."
        ]
        assert str(form.fields["source"].label) == "Kundennummer"
    with translation.override("en"):
        assert str(form.fields["source"].label) == "Customer number"


# --- The translation files ------------------------------------------------------------------------


def read_po(path: Path) -> list[dict]:
    """The entries of a .po file: msgid, msgid_plural, msgstr / msgstr[n], msgctxt and flags."""
    entries, entry, key = [], None, None
    for raw in [*path.read_text().splitlines(), ""]:
        line = raw.strip()
        if not line:
            if entry and "msgid" in entry:
                entries.append(entry)
            entry = key = None
            continue
        entry = entry if entry is not None else {"flags": set()}
        if line.startswith("#,"):
            entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry[key] += ast.literal_eval(line)
        else:
            key, _, value = line.partition(" ")
            entry[key] = ast.literal_eval(value)
    return entries


def translations_of(entry: dict) -> list[str]:
    return [value for key, value in entry.items() if key == "msgstr" or key.startswith("msgstr[")]


PLACEHOLDER = re.compile(r"%(?:\([^)]+\))?[-#0 +]*\d*(?:\.\d+)?[sdifr%]")


def test_the_german_catalogue_translates_every_msgid_with_its_placeholders():
    header, *entries = read_po(PO)

    assert "fuzzy" not in header["flags"] and "Plural-Forms: nplurals=2; plural=(n != 1);" in header["msgstr"]
    assert len(entries) > 300
    untranslated = [e["msgid"] for e in entries if "fuzzy" in e["flags"] or not all(translations_of(e))]
    assert not untranslated, f"Empty or fuzzy: {untranslated}"
    wrong = []
    for entry in entries:
        if "python-format" not in entry["flags"]:
            continue
        for source, translated in zip(
            [entry["msgid"], entry.get("msgid_plural", entry["msgid"])], translations_of(entry), strict=False
        ):
            if sorted(PLACEHOLDER.findall(source)) != sorted(PLACEHOLDER.findall(translated)):
                wrong.append(f"{source!r} -> {translated!r}")
    assert not wrong, "Placeholders differ:\n" + "\n".join(wrong)


def test_the_compiled_catalogue_is_up_to_date_with_the_po():
    header, *entries = read_po(PO)
    with MO.open("rb") as compiled:
        catalogue = dict(gettext.GNUTranslations(compiled)._catalog)

    expected = {"": header["msgstr"]}
    for entry in entries:
        msgid = f"{entry['msgctxt']}\x04{entry['msgid']}" if "msgctxt" in entry else entry["msgid"]
        if "msgid_plural" in entry:
            for n, value in enumerate(translations_of(entry)):
                expected[(msgid, n)] = value
        else:
            expected[msgid] = entry["msgstr"]
    stale = sorted(str(k) for k in expected.keys() ^ catalogue.keys()) + sorted(
        str(k) for k in expected.keys() & catalogue.keys() if expected[k] != catalogue[k] and k != ""
    )
    assert not stale, (
        "locale/de/LC_MESSAGES/django.mo is out of date: run "
        "`manage.py compilemessages -l de --ignore=.venv` and commit it. Differs: " + ", ".join(stale[:10])
    )


@pytest.mark.parametrize("code", [code for code, _ in settings.LANGUAGES if code != "en"])
def test_every_offered_language_has_a_catalogue(code):
    assert (LOCALE / code / "LC_MESSAGES" / "django.mo").exists()
    with translation.override(code):
        assert translation.gettext("Cases") != "Cases"
