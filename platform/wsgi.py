"""Entry points for running several app servers against one database (configuration from CULTURELAB_*
variables):

    gunicorn -k gunicorn.workers.gasgi.ASGIWorker 'culturelab.platform.wsgi:asgi'   # as `culturelab serve`
    gunicorn -k gthread --threads 4 'culturelab.platform.wsgi:app'                    # behind a buffering proxy

``asgi`` is what `culturelab serve` runs by default: slow and idle clients wait in the event loop and a
request takes one of CULTURELAB_THREADS (default 4) threads only once it has fully arrived (asgi.py).
"""

import os

from culturelab.platform.app import create_app
from culturelab.platform.asgi import asgi_app

app = create_app()
asgi = asgi_app(app, threads=int(os.environ.get("CULTURELAB_THREADS", "4")))
