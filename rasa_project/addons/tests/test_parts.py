"""The parts of the out-of-domain checks: the typo speller, the vote, and the compiled encoder
against its reference maths."""

from __future__ import annotations

import pytest

from addons.ood import Neighbours
from addons.spelling import Speller


def test_speller_corrects_only_unknown_words_to_training_words() -> None:
    speller = Speller(["episode", "buffering", "phone", "video"], ["the", "keeps", "on", "my", "greenland", "live"])
    assert speller.correct("the vidoe keeps bufering on my phnoe") == "the video keeps buffering on my phone"
    assert speller.correct("live on greenland") == "live on greenland"  # known words pass unchanged
    assert speller.correct("xyzzy") == "xyzzy"  # nothing close: unchanged


def test_the_vote_can_overrule_a_narrow_classifier_lead_but_not_a_clear_one() -> None:
    near = Neighbours(0.7, "faq_schedule", 0.2, (("faq_schedule", 0.8), ("faq_merch", 0.2)))
    assert near.combined({"faq_merch": 0.45, "faq_schedule": 0.35}) == "faq_schedule"
    assert near.combined({"faq_merch": 0.95, "faq_schedule": 0.03}) == "faq_merch"
    assert near.combined({"faq_merch": 0.45, "faq_schedule": 0.35}, weight=0.0) == "faq_merch"


@pytest.mark.parametrize(
    "text",
    [
        "hi",
        "when does the next episode of starfall chronicles drop",  # 12 word pieces: padded to 16
        "my order hasn't arrived and support never answered, this is the third time i write to you about the hoodie",
        "stream " * 80,  # past the longest compiled length: cut to it
    ],
)
def test_the_compiled_encoder_computes_the_reference_maths(text: str) -> None:
    import numpy as np

    from addons.encoder import shared_encoder

    encoder = shared_encoder()
    assert np.abs(encoder.encode([text])[0] - encoder.reference(text)).max() < 1e-5
