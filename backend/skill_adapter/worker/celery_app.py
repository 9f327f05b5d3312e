"""The worker's Celery app, for `celery -A skill_adapter.worker.celery_app worker` (`skill-adapter worker`)."""

from __future__ import annotations

from skill_adapter import webhooks
from skill_adapter.core.config import get_settings
from skill_adapter.quiet import silence_known_noise
from skill_adapter.worker import heartbeat
from skill_adapter.worker.queue import create_celery

silence_known_noise()  # Celery imports this module before its start-up checks and first connection
app = create_celery(get_settings())
app.conf.imports = ("skill_adapter.worker.tasks",)
heartbeat.install(get_settings())
webhooks.install(get_settings())  # delivers webhooks from the worker, never from the API's request path
