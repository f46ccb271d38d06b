"""Feature registry and the packed value codec: pure logic, no cluster."""

from __future__ import annotations

import numpy as np
import pytest

from cache.codec import HEADER_BYTES, CodecError, decode_many, encode, value_bytes
from cache.registry import Feature, FeatureGroup, FeatureRegistry, UnknownFeatureGroupError

GROUP = FeatureGroup("user_profile", "user", (Feature("a", 1.0), Feature("b", -2.0), Feature("c")), version=2)


def test_round_trip_with_missing_rows_served_as_defaults() -> None:
    rows = np.array([[0.5, 1.5, 2.5], [3.0, 4.0, 5.0]], dtype=np.float32)
    stored = [encode(GROUP, rows[0], 1_000), None, encode(GROUP, rows[1].astype(np.float64), 2_000)]
    matrix, event_ms, present = decode_many(GROUP, stored)
    np.testing.assert_array_equal(matrix, [[0.5, 1.5, 2.5], [1.0, -2.0, 0.0], [3.0, 4.0, 5.0]])
    assert event_ms.tolist() == [1_000, 0, 2_000] and present.tolist() == [True, False, True]
    assert len(stored[0]) == value_bytes(GROUP) == HEADER_BYTES + 12  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.zeros(4, np.float32), "expected 3 values"),
        (np.zeros((1, 3), np.float32), "expected 3 values"),
        (np.array([1, 2, 3]), "must be floating point"),
        (np.array([1.0, np.nan, 0.0]), "NaN or inf"),
        (np.array([1.0, np.inf, 0.0]), "NaN or inf"),
    ],
)
def test_bad_values_are_rejected_at_write_time(values: np.ndarray, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        encode(GROUP, values, 0)


def test_values_of_another_layout_are_rejected_not_misread() -> None:
    other = FeatureGroup("user_profile", "user", (Feature("a"), Feature("b"), Feature("c")), version=3)
    with pytest.raises(CodecError, match="another version"):
        decode_many(GROUP, [encode(other, np.zeros(3), 0)])
    wider = FeatureGroup("user_profile", "user", (Feature("a"), Feature("b"), Feature("c"), Feature("d")), version=2)
    with pytest.raises(CodecError, match="not 28 bytes each"):
        decode_many(GROUP, [encode(wider, np.zeros(4), 0)])
    corrupt = encode(GROUP, np.zeros(3), 0)
    corrupt[0:4] = b"XXXX"
    with pytest.raises(CodecError, match="another layout"):
        decode_many(GROUP, [corrupt])


def test_registry_resolves_a_model_feature_list_per_group() -> None:
    reg = FeatureRegistry.marketplace()
    ad0, ad1 = reg.group("ad_profile").qualified()[:2]
    resolved = reg.resolve([ad1, "user.interest_1", ad0])
    np.testing.assert_array_equal(resolved["ad_profile"][0], [1, 0])  # columns in the group's vector
    np.testing.assert_array_equal(resolved["ad_profile"][1], [0, 2])  # columns in the model's input
    np.testing.assert_array_equal(resolved["user_profile"][1], [1])
    with pytest.raises(UnknownFeatureGroupError, match=r"feature 'user\.nope' is in no registered group"):
        reg.resolve(["user.nope"])
    with pytest.raises(UnknownFeatureGroupError, match="unknown feature group 'nope'"):
        reg.group("nope")
    assert sum(g.width for g in reg.groups.values()) == 64


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FeatureGroup("g", "planet", (Feature("a"),)), "entity must be one of"),
        (lambda: FeatureGroup("g", "user", ()), "has no features"),
        (lambda: FeatureGroup("g", "user", (Feature("a"), Feature("a"))), "repeats a feature"),
        (lambda: FeatureGroup("G!", "user", (Feature("a"),)), "group name"),
        (lambda: Feature("a", float("nan")), "default must be finite"),
        (lambda: Feature("a", dtype="int64"), "only float32"),
    ],
)
def test_bad_definitions(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]
