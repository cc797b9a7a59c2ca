"""Vectorized decoding agrees with the schema's reference decoder; rebatching; features."""

from __future__ import annotations

import numpy as np
import pytest

from lakeless.dataset import Decoder, features, rebatch
from lakeless.dataset._decode import BadValue, concat
from lakeless.fleet import Fleet
from lakeless.schema import FEATURES, decode_clean_batch, encode_clean, encode_event


def values(count: int = 300) -> list[bytes]:
    fleet = Fleet(40, seed=2, start=0, failure_rate=50.0, ramp=1.0)
    out: list[bytes] = []
    while len(out) < count:
        out += [encode_clean(e) for e in fleet.step().events()]
    return out[:count]


def test_decoder_matches_schema_decoder() -> None:
    raw = values()
    reference = decode_clean_batch(raw)
    decoder = Decoder()
    for _ in range(2):  # second time from the memo
        got = decoder.decode(raw)
        assert got.numeric.tobytes() == reference.numeric.tobytes()
        assert got.numeric.dtype == reference.numeric.dtype
        assert (got.car_id, got.model, got.failure) == (
            reference.car_id,
            reference.model,
            reference.failure,
        )
    assert any(reference.failure)
    numbers_only = decoder.decode(raw, strings=False)
    assert numbers_only.numeric.tobytes() == reference.numeric.tobytes()
    assert numbers_only.car_id == []
    assert len(decoder.decode([])) == 0


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (None, r"too short.*\(no value\)"),
        (b"\x01abc", r"too short .* \(4 bytes\)"),
        (b"\x02" + b"\x00" * 200, "version byte 2"),
    ],
)
def test_decoder_locates_bad_values(bad: bytes | None, reason: str) -> None:
    raw: list[bytes] = values(10)
    raw.insert(4, bad)  # type: ignore[arg-type]
    with pytest.raises(BadValue, match=reason) as info:
        Decoder().decode(raw)
    assert info.value.index == 4


def test_decoder_rejects_bad_strings_and_json() -> None:
    good = values(3)
    truncated = good[1][:-1]
    with pytest.raises(BadValue, match="bad strings") as info:
        Decoder().decode([good[0], truncated])
    assert info.value.index == 1
    with pytest.raises(BadValue, match="trailing bytes"):
        Decoder().decode([good[0] + b"x"])
    json_event = encode_event(next(iter(Fleet(1, seed=1, start=0).step().events())))
    with pytest.raises(BadValue, match="version byte 123"):
        Decoder().decode([json_event])


def test_features_match_clean_batch_features() -> None:
    batch = decode_clean_batch(values())
    for dtype in (np.float32, np.float64):
        got = features(batch.numeric, dtype)
        assert got.dtype == dtype and got.shape == (len(batch), len(FEATURES))
        assert np.array_equal(got, batch.features(dtype))
    assert features(batch.numeric[::7]).shape == (len(batch.numeric[::7]), len(FEATURES))
    with pytest.raises(TypeError):
        features(np.zeros(3))


def test_rebatch_boundaries_do_not_depend_on_chunking() -> None:
    whole = decode_clean_batch(values(100))
    chunked = [whole.numeric[i : i + 13] for i in range(0, 100, 13)]
    pieces = [
        type(whole)(
            part, whole.car_id[i : i + 13], whole.model[i : i + 13], whole.failure[i : i + 13]
        )
        for i, part in zip(range(0, 100, 13), chunked, strict=True)
    ]
    a = list(rebatch([whole], 30))
    b = list(rebatch(pieces, 30))
    assert [len(x) for x in a] == [len(x) for x in b] == [30, 30, 30, 10]
    for x, y in zip(a, b, strict=True):
        assert x.numeric.tobytes() == y.numeric.tobytes() and x.car_id == y.car_id
    assert concat(b).failure == whole.failure
    assert list(rebatch([], 5)) == []
    with pytest.raises(ValueError):
        list(rebatch([whole], 0))
