"""Known-harmless messages from our dependencies, filtered by their exact text; nothing else is silenced.

Each entry names the library, why the message is harmless here, and the exact text it starts with:

- bitsandbytes (CPU with AVX512-BF16) logs "Failed to load CPU gemm_4bit_forward from kernels-community" at
  import when the optional ``kernels`` package is missing. It then uses its own CPU kernel; installing
  ``kernels`` would fetch code from the Hugging Face hub, which we do not want.
- PEFT reads ``model.is_gradient_checkpointing`` when it wraps a model, which transformers 5 deprecates with a
  FutureWarning ("`is_gradient_checkpointing` is deprecated"). The property still works until transformers 6.
- Celery warns "You're running the worker with superuser privileges" (a SecurityWarning) when run as root,
  which containers and CI do. Our workers accept JSON only, so Celery's pickle-as-root danger does not apply.
- kombu logs "No hostname was supplied. Reverting to default 'localhost'" for the embedded ``filesystem://``
  broker, whose URL has no host by design.

:func:`silence_known_noise` installs these filters; the CLI calls it, and so do the worker (its Celery app
module) and the spawned training and evaluation processes, whose output ends up in the same terminal.
"""

from __future__ import annotations

import logging
import warnings

# (logger, the message's exact start): records of that logger whose message starts so are dropped.
LOG_NOISE: tuple[tuple[str, str], ...] = (
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community"),
    ("kombu.connection", "No hostname was supplied."),
)
# (warning category, a regular expression matched at the start of the message).
WARNING_NOISE: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated and will be removed"),
    (UserWarning, r"You're running the worker with superuser privileges"),  # celery.exceptions.SecurityWarning
)


class DropMessage(logging.Filter):
    """Drops the records whose message starts with ``prefix``; every other record passes."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def silence_known_noise() -> None:
    """Install the filters above (idempotent: calling it again adds nothing)."""
    for name, prefix in LOG_NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessage) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(DropMessage(prefix))
    for category, pattern in WARNING_NOISE:
        # `append=False` puts it first; a duplicate entry is removed by the warnings module itself.
        warnings.filterwarnings("ignore", message=pattern, category=category)
