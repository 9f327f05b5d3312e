"""A CPU-time budget for work on user text (parsing a SKILL.md, building its dataset).

Every pattern that reads user text is linear, so the budget is a backstop: whatever slips through stops
with a clear 422 (``SkillParseError`` with reason ``too_complex``) instead of holding a worker thread,
and the GIL, for minutes. The budget counts the CPU time of the thread doing the work, so a busy machine
does not turn a normal skill into a refusal; the loops of the parser and the builder call
:func:`check_budget` often enough that one step between two checks is short.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from skill_adapter.core.errors import SkillParseError

# CPU seconds one request may spend parsing a skill and building its dataset. A 1 MB skill of ordinary
# markdown takes a fraction of this (docs/fault-tolerance.md has the figures).
DEFAULT_BUDGET_SECONDS = 1.0


@dataclass
class _Budget:
    what: str
    seconds: float
    deadline: float


_current: ContextVar[_Budget | None] = ContextVar("skill_adapter_work_budget", default=None)


@contextmanager
def work_budget(seconds: float = DEFAULT_BUDGET_SECONDS, *, what: str = "parsing the skill") -> Iterator[None]:
    """Run the block under a CPU budget of ``seconds`` (of this thread); nested budgets keep the outer one."""
    if _current.get() is not None:
        yield
        return
    token = _current.set(_Budget(what, seconds, time.thread_time() + seconds))
    try:
        yield
    finally:
        _current.reset(token)


def check_budget() -> None:
    """Raise ``SkillParseError(reason="too_complex")`` when the current budget is spent; no-op without one."""
    budget = _current.get()
    if budget is not None and time.thread_time() > budget.deadline:
        raise SkillParseError(
            f"the skill is too complex to process: {budget.what} took more than {budget.seconds:g} s of CPU; "
            "split it into smaller sections or files",
            reason="too_complex",
        )
