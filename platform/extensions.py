"""Flask extensions, created unbound and initialised by the app factory (Flask docs' pattern)."""

from flask import g, request
from flask_babel import Babel, lazy_gettext
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

LOCALES = ("en", "zh")


def select_locale() -> str:
    """The participant's study language on participant pages, else the browser's preference."""
    return getattr(g, "locale", None) or request.accept_languages.best_match(LOCALES) or "en"


babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "researcher.login"
login_manager.login_message = lazy_gettext("Please sign in to see this page.")
login_manager.login_message_category = "info"
