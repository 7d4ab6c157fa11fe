from django.contrib import admin

from settings_app.models import District, Installation, Patron, Role, School, SettingsChange, SmtpSettings


@admin.register(Installation)
class InstallationAdmin(admin.ModelAdmin):
    list_display = ["name", "hosting_mode"]


@admin.register(District)
class DistrictAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "mail_source", "default_language"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(School)
class SchoolAdmin(admin.ModelAdmin):
    list_display = ["name", "district"]
    list_filter = ["district"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Patron)
class PatronAdmin(admin.ModelAdmin):
    list_display = ["name", "school", "email", "language"]
    list_filter = ["language", "school__district"]
    search_fields = ["name", "email"]


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["user", "kind", "district", "school"]
    list_filter = ["kind"]
    autocomplete_fields = ["user"]


@admin.register(SmtpSettings)
class SmtpSettingsAdmin(admin.ModelAdmin):
    """Read-only here: settings change through their pages, where passwords are sealed and changes audited."""

    list_display = ["__str__", "host", "port", "transport", "updated_at"]
    exclude = ["password_sealed"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SettingsChange)
class SettingsChangeAdmin(admin.ModelAdmin):
    list_display = ["changed_at", "changed_by", "installation", "district"]

    def has_change_permission(self, request, obj=None):
        return False
