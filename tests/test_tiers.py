"""The tiers' ``-m`` expressions leave a module out without importing it only when none of its tests could be
selected (tests/helpers/tiers.py, used by conftest.py's ``pytest_ignore_collect``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.tiers import module_marks, never_selected

FAST = "not slow and not services and not e2e and not real_model"


def _module(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "test_x.py"
    path.write_text(f"import pytest\n\n{source}\n\n\ndef test_a() -> None:\n    pass\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("source", "marks"),
    [
        ("pytestmark = pytest.mark.slow", {"slow"}),
        ("pytestmark = [pytest.mark.services, pytest.mark.timeout(900)]", {"services", "timeout"}),
        ("pytestmark: list = [pytest.mark.e2e]", {"e2e"}),
        ("pytestmark = MARKS", set()),  # not read: the module is collected as usual
        ("pytestmark = [pytest.mark.slow, MARKS]", set()),
        ("X = 1", set()),
    ],
)
def test_module_marks_are_read_without_importing(tmp_path: Path, source: str, marks: set[str]) -> None:
    assert module_marks(_module(tmp_path, source)) == marks


def test_only_modules_no_test_of_which_can_be_selected_are_left_out(tmp_path: Path) -> None:
    slow = _module(tmp_path, "pytestmark = pytest.mark.slow")
    assert never_selected(slow, FAST)
    assert not never_selected(slow, "slow and not services")
    # A test of the module may add a mark of its own: "gpu" could select it, so the module is imported.
    assert not never_selected(slow, "not slow or gpu")
    assert not never_selected(slow, "services")  # a test of it may be marked services as well
    assert never_selected(slow, "not slow")
    unmarked = _module(tmp_path, "X = 1")
    assert not never_selected(unmarked, FAST) and not never_selected(unmarked, "slow")


def test_the_fast_tier_leaves_out_the_wholly_slow_modules() -> None:
    tests = Path(__file__).parent
    assert never_selected(tests / "evaluation" / "test_evaluate_job.py", FAST)  # peft, sacrebleu
    assert never_selected(tests / "serving" / "test_openai_serving.py", FAST)  # openai
    assert not never_selected(tests / "assets" / "test_tiny_model.py", FAST)  # some of its tests are fast
