"""WSGI entry point for running several app servers against one database:
``gunicorn 'culturelab.platform.wsgi:app'`` (configuration from CULTURELAB_* variables)."""

from culturelab.platform.app import create_app

app = create_app()
