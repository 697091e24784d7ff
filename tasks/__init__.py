"""postrefresh's Celery layer: `celery -A tasks worker|beat|flower` loads `tasks.app`."""

from tasks.app import app

__all__ = ["app"]
