from django.db import migrations, models
import django.db.models.deletion
from django.db.models import OuterRef, Subquery

# A suggestion names what was written (kind + canonical id) itself, and its identity only when
# the value was another customer's: an address or number that is nobody's becomes a suggestion
# too (a new contact detail). Existing rows all matched an identity: they take its kind and id.
KINDS = [("email", "E-mail"), ("phone", "Phone"), ("whatsapp", "WhatsApp")]


def fill_from_identity(apps, schema_editor):
    IdentitySuggestion = apps.get_model("customers", "IdentitySuggestion")
    Identity = apps.get_model("customers", "Identity")
    identity = Identity.objects.filter(pk=OuterRef("identity_id"))
    IdentitySuggestion.objects.update(
        kind=Subquery(identity.values("kind")[:1]), platform_id=Subquery(identity.values("platform_id")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0004_customer_name_search"),
    ]

    operations = [
        migrations.AddField(
            model_name="identitysuggestion",
            name="kind",
            field=models.CharField(choices=KINDS, default="", max_length=16),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="identitysuggestion",
            name="platform_id",
            field=models.CharField(default="", max_length=255),
            preserve_default=False,
        ),
        migrations.RunPython(fill_from_identity, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="identitysuggestion",
            name="identity",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="suggestions",
                to="customers.identity",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="identitysuggestion",
            name="identitysuggestion_unique_pair",
        ),
        migrations.AddConstraint(
            model_name="identitysuggestion",
            constraint=models.UniqueConstraint(
                fields=("customer", "kind", "platform_id"), name="identitysuggestion_unique_value"
            ),
        ),
        migrations.AddConstraint(
            model_name="identitysuggestion",
            constraint=models.CheckConstraint(
                condition=models.Q(kind__in=["email", "phone", "whatsapp"]),
                name="identitysuggestion_kind_contact",
            ),
        ),
    ]
