import uuid

import pytest

from otel_collector_ext.pipeline.sampling import Sampler, sample_point


def test_same_id_same_decision_for_every_collection_at_the_same_rate() -> None:
    sampler = Sampler(0.5)
    ids = [str(uuid.uuid4()) for _ in range(2000)]
    for cid in ids:
        assert sampler.should_sample("model_inputs", cid) == sampler.should_sample(
            "model_outputs", cid
        )
    kept = sum(sampler.should_sample("model_inputs", cid) for cid in ids)
    assert 850 < kept < 1150  # binomial(2000, 0.5): 6 sigma either side


def test_rates_are_nested_and_extremes_exact() -> None:
    sampler = Sampler(1.0, {"rare": 0.1, "half": 0.5, "none": 0.0})
    ids = [str(uuid.uuid4()) for _ in range(3000)]
    rare = {cid for cid in ids if sampler.should_sample("rare", cid)}
    half = {cid for cid in ids if sampler.should_sample("half", cid)}
    assert rare <= half  # kept at 0.1 implies kept at 0.5
    assert all(sampler.should_sample("other", cid) for cid in ids)
    assert not any(sampler.should_sample("none", cid) for cid in ids)


@pytest.mark.parametrize("cid", ["", "x" * 100_000, "\udcff surrogate", "emoji 🚀"])
def test_hostile_ids_do_not_raise(cid: str) -> None:
    assert 0.0 <= sample_point(cid) < 1.0
