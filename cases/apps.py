from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "cases"
    verbose_name = "Cases"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from config.middleware import note_factor_at_sign_in

        user_logged_in.connect(note_factor_at_sign_in, dispatch_uid="caseline-factor-at-sign-in")
