"""Request streams: rate, bursts, determinism, and drifts that change what they say from T on, and nothing before."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.synth import (
    FEATURE_NAMES,
    BrokenFeature,
    Burst,
    CtrShift,
    FeatureShift,
    Request,
    RequestStream,
    StreamConfig,
    World,
    WorldConfig,
    candidate_matrix,
    feature_indices,
    make_world,
    truth,
)
from models.synth.truth import sigmoid

T = 10.0


@pytest.fixture(scope="module")
def world() -> World:
    return make_world(WorldConfig(seed=2, n_users=5_000, n_advertisers=500, n_campaigns=2_000, n_ads=20_000))


def _requests(world: World, **config: object) -> list[Request]:
    return list(RequestStream(world, StreamConfig(**config)))  # type: ignore[arg-type]


def test_rate_and_burst(world: World) -> None:
    stream = RequestStream(
        world, StreamConfig(rate_rps=400.0, duration_s=20.0, n_candidates=8, bursts=(Burst(8.0, 4.0, 3.0),), seed=1)
    )
    assert stream.expected_count() == pytest.approx(400 * 16 + 1200 * 4)
    assert stream.rate_at(7.9) == 400 and stream.rate_at(8.0) == 1200 and stream.rate_at(12.0) == 400
    reqs = list(stream)
    times = np.array([r.send_time_s for r in reqs])
    assert abs(len(reqs) - stream.expected_count()) < 5 * np.sqrt(stream.expected_count())
    assert np.all(np.diff(times) >= 0) and times[0] >= 0 and times[-1] < 20.0
    assert [r.request_id for r in reqs] == list(range(len(reqs)))
    inside = np.count_nonzero((times >= 8) & (times < 12)) / 4.0
    outside = np.count_nonzero((times < 8) | (times >= 12)) / 16.0
    assert inside / outside == pytest.approx(3.0, rel=0.1)
    assert abs(outside - 400) < 5 * np.sqrt(400 * 16) / 16


def test_requests_are_well_formed(world: World) -> None:
    for r in _requests(world, rate_rps=200.0, duration_s=5.0, n_candidates=50, seed=4):
        ads = r.candidate_ad_ids
        assert ads.shape == (50,) and ads.dtype == np.int32 and not ads.flags.writeable
        assert np.unique(ads).shape == (50,)
        assert 0 <= r.user_id < world.n_users
        if r.context.device_name == "ctv":
            assert r.context.is_pod and 0 <= r.context.slot_pos < r.context.n_slots
            assert np.all(world.ad_format[ads] == 1)  # pods take video only


def test_streams_are_deterministic_under_a_seed(world: World) -> None:
    config = StreamConfig(rate_rps=300.0, duration_s=3.0, n_candidates=20, seed=9)
    stream = RequestStream(world, config)

    def key(reqs: list[Request]) -> list[tuple[object, ...]]:
        return [(r.request_id, r.send_time_s, r.user_id, r.context, r.candidate_ad_ids.tobytes()) for r in reqs]

    first = key(list(stream))
    assert key(list(stream)) == first  # iterating again replays the same sequence
    assert key(list(RequestStream(world, config))) == first
    assert key(_requests(world, rate_rps=300.0, duration_s=3.0, n_candidates=20, seed=10)) != first
    r = list(stream)[5]
    assert np.array_equal(stream.outcomes(r).click, stream.outcomes(r).click)


def _split(reqs: list[Request]) -> tuple[list[Request], list[Request]]:
    return [r for r in reqs if r.send_time_s < T], [r for r in reqs if r.send_time_s >= T]


def test_feature_shift_moves_the_feature_from_t_on_and_not_before(world: World) -> None:
    col = int(feature_indices(["user.hist_ctr"])[0])
    config = StreamConfig(rate_rps=100.0, duration_s=20.0, n_candidates=16, seed=3)
    drifted = RequestStream(world, replace(config, drifts=(FeatureShift("user.hist_ctr", T, 2.0),)))
    clean = RequestStream(world, config)
    before, after = _split(list(drifted))
    assert before and after
    for r in before:
        assert np.array_equal(drifted.features(r), clean.features(r))
    for r in after:
        x, x0 = drifted.features(r), clean.features(r)
        assert np.array_equal(x[:, col], x0[:, col] + np.float32(2.0))
        assert np.array_equal(np.delete(x, col, axis=1), np.delete(x0, col, axis=1))  # only that feature
    mean_before = np.mean([drifted.features(r)[0, col] for r in before])
    mean_after = np.mean([drifted.features(r)[0, col] for r in after])
    assert mean_after - mean_before == pytest.approx(2.0, abs=0.4)


def test_broken_feature_reads_its_default_in_the_stated_fraction_after_t(world: World) -> None:
    col = int(feature_indices(["ad.quality"])[0])
    stream = RequestStream(
        world,
        StreamConfig(
            rate_rps=100.0, duration_s=20.0, n_candidates=16, seed=3, drifts=(BrokenFeature("ad.quality", T, 0.5),)
        ),
    )
    before, after = _split(list(stream))

    def broken(r: Request) -> bool:
        return bool(np.all(stream.features(r)[:, col] == 0.0))

    assert not any(broken(r) for r in before)
    fraction = np.mean([broken(r) for r in after])
    assert fraction == pytest.approx(0.5, abs=4 * np.sqrt(0.25 / len(after)))
    r = after[0]
    assert broken(r) == broken(r)  # which requests break depends on the request only
    # on a model's column subset, the same drift applies to the same requests
    cols = feature_indices(["user.hist_ctr", "ad.quality"])
    for r in after[:50]:
        sub = np.ascontiguousarray(candidate_matrix(world, r.user_id, r.context, r.candidate_ad_ids)[:, cols])
        stream.apply_feature_drifts(sub, r.request_id, r.send_time_s, columns=cols)
        assert np.array_equal(sub, stream.features(r)[:, cols])


def test_ctr_shift_moves_the_true_click_logit_after_t(world: World) -> None:
    stream = RequestStream(
        world, StreamConfig(rate_rps=100.0, duration_s=20.0, n_candidates=32, seed=8, drifts=(CtrShift(T, 1.0),))
    )
    assert stream.ctr_shift_at(T - 1e-9) == 0.0 and stream.ctr_shift_at(T) == 1.0
    before, after = _split(list(stream))
    for r, shift in [(before[-1], 0.0), (after[0], 1.0)]:
        n = r.candidate_ad_ids.shape[0]
        base = truth(
            world, np.full(n, r.user_id), r.candidate_ad_ids, r.context.batch().take(np.zeros(n, dtype=np.intp))
        )
        logit = np.log(base.p_click / (1 - base.p_click))
        assert np.allclose(stream.outcomes(r).p_click, sigmoid(logit + shift))
    ctr_before = np.mean([stream.outcomes(r).click.mean() for r in before])
    ctr_after = np.mean([stream.outcomes(r).click.mean() for r in after])
    assert ctr_after > 1.8 * ctr_before  # a +1 logit is about x2.5 at these rates


def test_drift_configs_are_checked() -> None:
    with pytest.raises(KeyError, match=r"user\.nope"):
        StreamConfig(drifts=(FeatureShift("user.nope", 1.0, 1.0),))
    with pytest.raises(ValueError, match="fraction"):
        BrokenFeature("ad.quality", 1.0, 1.5)
    with pytest.raises(ValueError, match="Burst"):
        Burst(0.0, 0.0, 2.0)
    assert len(FEATURE_NAMES) == 64
