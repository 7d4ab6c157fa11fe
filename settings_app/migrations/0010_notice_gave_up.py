# A notice's failure is worded when it is shown, in the reader's language: the stored English text gives way to
# its category (already stored) and whether delivery gave up.

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
