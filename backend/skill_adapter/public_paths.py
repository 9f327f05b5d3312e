"""Server paths as API clients see them: relative to the folder they live in, never absolute.

The database and the files on disk keep absolute paths (the workers, the model server and ``export`` load
from them, and an operator reads ``train.log`` and the process logs on the server). What leaves through the
API (``/status``, ``/jobs``, ``/logs``, ``/events``, evaluations) and in webhooks names each path under a
configured root relative to it, the way ``/checkpoints`` does (:func:`skill_adapter.service.shown_path`):
``checkpoints/train-1a2b/final`` when the root is configured as the relative ``checkpoints`` (the default),
``train-1a2b/final`` when it is configured as an absolute folder. The roots are the checkpoint folder, the
skills root, the data folder, the built-in models' folder, the package's own assets (the embedded model), and
for tracebacks in a failed job's log the package itself, the installed libraries and the standard library.
A path outside every root is left as it is: the operator configured it (an absolute ``SKILL_ADAPTER_MODEL``).
"""

from __future__ import annotations

import functools
import re
import sysconfig
import threading
from pathlib import Path
from typing import Any

import skill_adapter
from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.core.config import Settings


class PathShower:
    """Rewrites the absolute forms of a few roots, in any text, to the relative names clients see.

    ``roots`` pairs each root with its shown name: the relative name it was configured with, or ``""`` for an
    absolute one (its children are then named relative to it, and the root itself as ``.``).
    """

    def __init__(self, roots: list[tuple[Path, str]]) -> None:
        replacements: dict[str, str] = {}
        for root, shown in roots:
            for form in (str(root), str(root.resolve())):
                if Path(form).is_absolute() and form != "/":
                    replacements.setdefault(form.rstrip("/"), shown)
        self._replacements = replacements
        # Longest first, so a root inside another (models inside data) wins; the match ends at a path boundary:
        # a slash (consumed: what follows is the relative part) or a character no path name here contains.
        alternatives = "|".join(re.escape(form) for form in sorted(replacements, key=len, reverse=True))
        self._pattern = (
            re.compile(f"({alternatives})(?:(/)|(?=[^\\w.\\-/]|\\.(?![\\w.\\-/])|$))") if replacements else None
        )

    def _replace(self, match: re.Match[str]) -> str:
        shown = self._replacements[match.group(1)]
        if match.group(2):
            return f"{shown}/" if shown else ""
        return shown or "."

    def text(self, value: str) -> str:
        if self._pattern is None or "/" not in value:
            return value
        return self._pattern.sub(self._replace, value)

    def path(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def value(self, value: Any) -> Any:
        """``value`` with every string in it (dict values, list items) rewritten; other values unchanged."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value


_LIBRARIES = sorted({Path(sysconfig.get_path(key)) for key in ("purelib", "platlib", "stdlib")})


def _roots(settings: Settings) -> list[tuple[Path, str]]:
    def shown(root: Path) -> str:
        # A root configured as a relative folder keeps its name ("checkpoints/..."); an absolute one disappears.
        return "" if root.expanduser().is_absolute() else root.as_posix().rstrip("/")

    models = settings.models_dir or settings.data_dir / "models"
    roots = [
        (settings.checkpoint_dir, shown(settings.checkpoint_dir)),
        (settings.skills_root, shown(settings.skills_root)),
        (models, shown(models)),
        (settings.data_dir, shown(settings.data_dir)),
        (TINY_MODEL_DIR.parent, ""),
        # Where tracebacks in a failed job's log point: this package, the installed libraries, the stdlib.
        (Path(skill_adapter.__file__).parent.parent, ""),
        *((folder, "") for folder in _LIBRARIES),
    ]
    return [(root.expanduser().absolute(), name) for root, name in roots]


@functools.lru_cache(maxsize=16)
def _shower(key: tuple[tuple[str, str], ...]) -> PathShower:
    return PathShower([(Path(root), name) for root, name in key])


# The shower of each Settings object in use, by identity: /status asks for it on every call, and building the
# key (paths, sysconfig) costs about a millisecond. The object is kept with it, so its id cannot be reused.
_BY_SETTINGS: dict[int, tuple[Settings, PathShower]] = {}
_LOCK = threading.Lock()


def shower(settings: Settings) -> PathShower:
    """The :class:`PathShower` of ``settings``' roots (settings are not changed in place once in use)."""
    hit = _BY_SETTINGS.get(id(settings))
    if hit is not None and hit[0] is settings:
        return hit[1]
    made = _shower(tuple((str(root), name) for root, name in _roots(settings)))
    with _LOCK:
        if len(_BY_SETTINGS) >= 64:
            _BY_SETTINGS.pop(next(iter(_BY_SETTINGS)))
        _BY_SETTINGS[id(settings)] = (settings, made)
    return made
