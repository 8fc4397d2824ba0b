"""bench/sentiment_fit.py's candidate training sets and its prior correction (no embedding needed)."""

from __future__ import annotations

import numpy as np

from bench import sentiment_fit
from bench.sentiment_fit import HAND_WEIGHT, TEMPLATE_WEIGHT, Candidate, Row, extra_rows, fit_classifier


def test_user_prefix_repeats_the_hand_written_rows_only_without_a_kind() -> None:
    rows = [Row("Love it", "positive", "praise", HAND_WEIGHT, "a"),
            Row("The app is slow.", "negative", "complaint", TEMPLATE_WEIGHT, "t")]
    assert extra_rows("user-prefix", rows) == [Row("@user Love it", "positive", "-", HAND_WEIGHT, "a")]


def test_the_lexicon_rows_are_labelled_by_the_sign_of_their_valence() -> None:
    labels = {row.text: row.sentiment for row in extra_rows("vader-lexicon", [])}
    assert labels["good"] == "positive" and labels["horrible"] == "negative"
    assert "okay" not in labels  # |mean valence| 0.9 < LEXICON_VALENCE: too weak to label
    assert {row.kind for row in extra_rows("vader-lexicon", [])} == {"-"}


def test_posts_are_read_with_their_labels() -> None:
    posts = extra_rows("posts", [])
    assert len(posts) > 100 and {row.sentiment for row in posts} == {"negative", "neutral", "positive"}


def test_equal_priors_remove_the_training_mix_from_the_decision() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 6)).astype(np.float32)
    labels = [0] * 300 + [1] * 50 + [2] * 50  # a mix far from equal; the features carry no signal
    weights = np.ones(400)
    plain = fit_classifier(Candidate(), features, labels, weights).predict_proba(features).mean(axis=0)
    corrected = fit_classifier(Candidate(equal_priors=True), features, labels, weights).predict_proba(features)
    assert plain[0] > 0.6  # the mix of the training rows
    assert np.allclose(corrected.mean(axis=0), 1 / 3, atol=0.05)
    assert sentiment_fit.CANDIDATES["lr-c0.5-equal-priors"].equal_priors
