"""postrefresh's Celery layer: `celery -A tasks ...` loads the app from `tasks.celery`.

Importing this package builds nothing: `postrefresh enqueue|status|metrics` (tasks.cli)
build their own app from their own settings.
"""
