"""Error reports (debug pages, error mail, logged tracebacks with locals) that never carry a secret."""

from django.views.debug import SafeExceptionReporterFilter


class SecretHidingFilter(SafeExceptionReporterFilter):
    """Cleanse every report, in development too, and every variable and posted field, not only those marked.

    A posted field, a variable, or a key in a dict or list held by one, whose name looks like a secret (PASS,
    SECRET, TOKEN, KEY, AUTH...) is replaced with stars wherever it is, so a new code path cannot leak a password
    by forgetting a `sensitive_variables` or `sensitive_post_parameters` decorator.
    """

    def is_active(self, request):
        return True

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, self.cleanse_setting(name, value)) for name, value in variables]

    def get_post_parameters(self, request):
        parameters = super().get_post_parameters(request)
        if request is None:
            return parameters
        cleansed = parameters.copy()
        for name in parameters:
            if self.hidden_settings.search(name):
                cleansed[name] = self.cleansed_substitute
        return cleansed
