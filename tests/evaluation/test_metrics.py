"""The report's metric functions against values computed by hand."""

from __future__ import annotations

import math

import pytest

from skill_adapter.evaluation import metrics


def test_normalize_folds_case_width_space_and_edge_punctuation() -> None:
    assert metrics.normalize('  "Fix:   the\tBUG."  ') == "fix: the bug"
    assert metrics.normalize("\uff21\uff22\uff23") == "abc"  # NFKC folds full-width letters
    assert metrics.exact_match("feat(api): add X.", "FEAT(api): add x")
    assert not metrics.exact_match("feat: add x", "fix: add x")


def test_accuracy_is_the_share_of_exact_matches() -> None:
    assert metrics.accuracy(["a", "B ", "c"], ["a", "b", "d"]) == pytest.approx(2 / 3)
    assert metrics.accuracy([], []) is None
    with pytest.raises(ValueError):
        metrics.accuracy(["a"], [])


def test_bleu_matches_a_hand_computed_score() -> None:
    # 1- to 4-gram precisions 3/4, 2/3, 1/2 and 0/1; sacrebleu's default 'exp' smoothing turns the
    # zero 4-gram count into 1 / (2 * 1); no brevity penalty (equal lengths).
    expected = 100 * (0.75 * (2 / 3) * 0.5 * 0.5) ** 0.25
    assert metrics.corpus_bleu(["a b c d"], ["a b c e"]) == pytest.approx(expected, abs=1e-6)
    assert metrics.corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100)
    assert metrics.corpus_bleu([], []) is None


def test_chrf_is_100_for_identical_text_and_0_for_disjoint_text() -> None:
    assert metrics.corpus_chrf(["commit message"], ["commit message"]) == pytest.approx(100)
    assert metrics.corpus_chrf(["xyz"], ["abc"]) == pytest.approx(0)
    assert metrics.sentence_chrf("abc", "abc") == pytest.approx(100)
    partial = metrics.corpus_chrf(["commit messages"], ["commit message"])
    assert partial is not None and 0 < partial < 100


def test_perplexity_is_exp_of_mean_token_nll() -> None:
    # Two tokens, each with probability 1/4: perplexity 4.
    assert metrics.perplexity(2 * math.log(4), 2) == pytest.approx(4.0)
    assert metrics.perplexity(0.0, 3) == pytest.approx(1.0)
    assert metrics.perplexity(1.0, 0) is None
    assert metrics.perplexity(1e6, 1) == math.inf


def test_internalisation_ratio() -> None:
    assert metrics.internalisation_ratio(10.0, 30.0, 25.0) == (pytest.approx(0.75), None)
    # perplexity: lower is better, the ratio still reads "share of the skill's effect"
    assert metrics.internalisation_ratio(100.0, 50.0, 60.0)[0] == pytest.approx(0.8)
    ratio, reason = metrics.internalisation_ratio(10.0, 10.0, 12.0)
    assert ratio is None and reason and "changes nothing" in reason
    ratio, reason = metrics.internalisation_ratio(None, 1.0, 2.0)
    assert ratio is None and reason
    ratio, reason = metrics.internalisation_ratio(math.inf, 1.0, 2.0)
    assert ratio is None and reason


def test_a_ratio_over_a_skill_effect_too_small_to_measure_means_nothing() -> None:
    # The tiny model's case: the SKILL.md moved perplexity by 0.12%, and the ratio came out at -16.24.
    ratio, reason = metrics.internalisation_ratio(1319.330, 1320.855, 1294.555, metric="perplexity")
    assert ratio is None and reason and "only 0.12%" in reason and "1319.33" in reason and "1320.86" in reason
    # The same numbers without a metric name: only an exactly zero effect is refused.
    assert metrics.internalisation_ratio(1319.330, 1320.855, 1294.555)[0] == pytest.approx(-16.2459, rel=1e-3)
    # A 2% perplexity effect is measurable.
    assert metrics.internalisation_ratio(100.0, 98.0, 99.0, metric="perplexity")[0] == pytest.approx(0.5)
    # BLEU and chrF need one point of 100; accuracy moves by whole cases, so any change counts.
    ratio, reason = metrics.internalisation_ratio(10.0, 10.5, 20.0, metric="bleu")
    assert ratio is None and reason and "only 0.50 points" in reason
    assert metrics.internalisation_ratio(10.0, 12.0, 11.0, metric="chrf")[0] == pytest.approx(0.5)
    assert metrics.internalisation_ratio(0.0, 0.1, 0.1, metric="accuracy")[0] == pytest.approx(1.0)
    ratio, reason = metrics.internalisation_ratio(0.0, 0.0, 0.1, metric="accuracy")
    assert ratio is None and reason and "changes nothing" in reason
