"""ScoreStep without a broker."""

from __future__ import annotations

from lakeless.fleet._schema import FEATURES
from lakeless.model.scoring import OnnxScorerFactory
from lakeless.registry import build_record
from lakeless.schema.outputs import OutputCodec
from lakeless.testing.models import make_test_onnx


class _Message:
    def __init__(self, topic: str, offset: int, value: bytes) -> None:
        self._t, self._o, self._v = topic, offset, value

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes:
        return self._v


def test_all_scores_are_written_for_a_batch_without_anomalies() -> None:
    # A batch with no anomaly used to fail with --all-scores (the encoder was only bound
    # when some record was an anomaly).
    from lakeless.config import Settings
    from lakeless.fleet import Fleet
    from lakeless.pipeline import Pipeline
    from lakeless.schema import CleanCodec
    from lakeless.score._step import ScoreStep

    pipeline = Pipeline.builtin(Settings())
    codec = CleanCodec(pipeline.schema)
    events = Fleet(5, seed=1).step().events()
    clean = pipeline.topics.clean
    messages = [_Message(clean, i, codec.encode(e)) for i, e in enumerate(events)]
    record = build_record("m", 1, make_test_onnx(), threshold=1e30, features=FEATURES)
    step = ScoreStep(pipeline, OnnxScorerFactory(1), None, all_scores=True)
    assert step.swap(record)
    codec_out = OutputCodec(pipeline.schema)
    result = step.process(messages)  # type: ignore[arg-type]
    assert [output[0] for output in result.outputs] == [pipeline.topics.scores] * 5
    assert [codec_out.decode_score(output[1]).anomaly for output in result.outputs] == [False] * 5
