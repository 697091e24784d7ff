"""The app `celery -A tasks worker|beat|flower` loads (Celery finds it as `tasks.celery.app`).

This is the one module that reads the environment at import: a worker, beat or Flower has
no command line of ours, so its Settings come from env vars and the TOML files they name.
"""

from __future__ import annotations

import os

from tasks.app import create_app
from worker.settings import load_settings
from worker.site.generators import site_defaults

settings = load_settings({}, os.environ, site_defaults=site_defaults)
app = create_app(settings)
