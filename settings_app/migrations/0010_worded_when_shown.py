# What delivery books about a failure is worded when it is shown, in the reader's language: a notice's stored
# English text gives way to its category (already stored) and whether delivery gave up; a back-off keeps its
# category beside the server's reply.

from django.db import migrations, models


def mark_given_up(apps, schema_editor):
    Notice = apps.get_model("settings_app", "Notice")
    Notice.objects.filter(status="failed", last_error__startswith="Gave up").update(gave_up=True)


class Migration(migrations.Migration):

    dependencies = [
        ('settings_app', '0009_delivery_rounds'),
    ]

    operations = [
        migrations.AddField(
            model_name='deliverystate',
            name='busy_category',
            field=models.CharField(blank=True, max_length=40),
        ),
        migrations.AddField(
            model_name='notice',
            name='gave_up',
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_given_up, migrations.RunPython.noop, elidable=True),
        migrations.RemoveField(
            model_name='notice',
            name='last_error',
        ),
    ]
