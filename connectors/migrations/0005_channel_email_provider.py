from django.db import migrations, models


def name_mailgun_channels(apps, schema_editor):
    """E-mail channels that check a Mailgun signature today are Mailgun channels.

    Others start as raw MIME; a SendGrid, Postmark or SES channel is set in the admin,
    and what it received meanwhile (stored, failed) runs again with replay_inbox.
    """
    Channel = apps.get_model("connectors", "Channel")
    for channel in Channel.objects.filter(kind="email"):
        if "webhook_signing_key" in (channel.secret_env or {}):
            channel.email_provider = "mailgun"
            channel.save(update_fields=["email_provider"])


class Migration(migrations.Migration):
    dependencies = [
        ("connectors", "0004_webhook_merge_split_events"),
    ]

    operations = [
        migrations.AddField(
            model_name="channel",
            name="email_provider",
            field=models.CharField(
                choices=[
                    ("raw", "Raw MIME (message/rfc822 posts, IMAP)"),
                    ("mailgun", "Mailgun"),
                    ("sendgrid", "SendGrid"),
                    ("postmark", "Postmark"),
                    ("amazon_ses", "Amazon SES"),
                ],
                default="raw",
                help_text="E-mail channels: the ESP that posts inbound mail to this channel's webhook.",
                max_length=16,
            ),
        ),
        migrations.RunPython(name_mailgun_channels, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="channel",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("email_provider__in", ["raw", "mailgun", "sendgrid", "postmark", "amazon_ses"]),
                    models.Q(("kind", "email"), ("email_provider", "raw"), _connector="OR"),
                ),
                name="channel_email_provider_valid",
            ),
        ),
    ]
