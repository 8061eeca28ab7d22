"""Fetch unseen mail of the IMAP e-mail channels into the inbox: ``manage.py poll_imap [--channel SLUG]``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from connectors import imap


class Command(BaseCommand):
    help = (
        "Poll the IMAP mailbox of every active e-mail channel that names one (or only --channel): "
        "unseen messages are stored in the inbox, processed, and flagged seen."
    )

    def add_arguments(self, parser):
        parser.add_argument("--channel", help="Only the e-mail channel with this slug.")

    def handle(self, *args, channel=None, **options):
        results = imap.poll_imap_channels(slug=channel)
        if channel and not results:
            raise CommandError(f"No active e-mail channel {channel!r} with an IMAP mailbox (imap_host).")
        for result in results:
            line = (
                f"{result.channel}: {result.unseen} unseen, {result.stored} stored, "
                f"{result.duplicates} already in the inbox"
            )
            if result.error:
                self.stderr.write(f"{line}; failed: {result.error}")
            else:
                self.stdout.write(line)
        if not results:
            self.stdout.write("No e-mail channel has an IMAP mailbox.")
        failed = [r.channel for r in results if r.error]
        if failed:
            raise CommandError(f"Polling failed for: {', '.join(failed)}.")
