"""The engine's text bookkeeping: stop strings and what is held back (pure functions, no model)."""

from __future__ import annotations

from skill_adapter.serving.text import first_stop, held_back


def test_first_stop_finds_the_earliest_stop_string() -> None:
    assert first_stop("one two END three", ["three", "END"]) == 8
    assert first_stop("nothing here", ["END"]) is None


def test_text_that_may_start_a_stop_string_isheld_back() -> None:
    assert held_back("answer: EN", ["END"]) == 2
    assert held_back("answer: E", ["END", "Eh?"]) == 1
    assert held_back("answer", ["END"]) == 0
    assert held_back("", ["END"]) == 0
