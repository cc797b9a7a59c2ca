"""`TrainSettings`: ``LAKELESS_TRAIN__*`` and the options of ``lakeless train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from lakeless._options import StageOptions

__all__ = ["TrainSettings", "default_units"]


def default_units(n_features: int) -> tuple[int, ...]:
    """Hidden widths for ``n_features`` inputs: 78 % and 39 % of them, mirrored.

    Example:
        >>> default_units(18), default_units(7)
        ((14, 7, 7, 14), (5, 3, 3, 5))
    """
    outer, inner = max(2, round(0.78 * n_features)), max(1, round(0.39 * n_features))
    return (outer, inner, inner, outer)


class TrainSettings(StageOptions):
    """What to train on, how, and under which name.

    The window is one of ``last``, ``start``/``end``, ``offsets``, ``same_window_as``, or
    (none given) every record of the clean topic; `train` also takes a `Window` directly.

    Example:
        >>> TrainSettings(units="32, 16,32", epochs=5).model_params()["units"]
        (32, 16, 32)
    """

    last: str | None = Field(
        default=None, description="Window: the last DURATION (e.g. 30m, 2h, 1d)."
    )
    start: str | None = Field(
        default=None, description="Window start, ISO 8601 with a timezone (or -30m: relative)."
    )
    end: str | None = Field(
        default=None, description="Window end (exclusive), ISO 8601; default now."
    )
    offsets: str | None = Field(
        default=None,
        description='Window by offsets: "0:100-200,1:0-50" (PARTITION:START-END, end exclusive).',
    )
    same_window_as: str | None = Field(
        default=None,
        description="Replay: train on exactly the offsets this registered model (NAME:VERSION) "
        "was trained on.",
    )
    topic: str | None = Field(
        default=None, description="The clean topic to read (default: the pipeline's)."
    )
    name: str | None = Field(
        default=None,
        description="Registry name of the model (default: the pipeline's, e.g. car-autoencoder).",
    )
    # NoDecode: LAKELESS_TRAIN__UNITS=14,7,7,14 is split by the validator, not read as JSON.
    units: Annotated[tuple[int, ...] | None, NoDecode] = Field(
        default=None,
        description="Hidden layer widths, comma-separated (default: from the feature count, "
        "the talk's 14,7,7,14 for the car fleet's 18).",
    )
    epochs: int = Field(default=20, ge=1, le=100_000, description="Epochs.")
    batch_size: int = Field(default=256, ge=1, description="Rows per gradient step.")
    learning_rate: float = Field(default=1e-3, gt=0, lt=10, description="Adam learning rate.")
    threshold_quantile: float = Field(
        default=0.9995,
        gt=0,
        lt=1,
        description="Quantile of held-out healthy scores that becomes the threshold.",
    )
    aggregation: str = Field(
        default="mean",
        pattern=r"^(mean|max|top[1-9][0-9]*)$",
        description="A row's score from its residual-scaled feature errors: mean (the talk's), "
        "max (the largest: one broken feature is not diluted by the others) or topK (the mean "
        "of the K largest, e.g. top3).",
    )
    calibration: Literal["latest", "random"] = Field(
        default="latest",
        description="Calibrate the threshold on the latest rows in time (train on the earlier "
        "ones) or on a random sample.",
    )
    holdout: float = Field(
        default=0.2, gt=0, lt=1, description="Fraction of the rows held out for calibration."
    )
    label_free: bool = Field(
        default=False, description="Train on every row, failures included (labels only evaluate)."
    )
    seed: int | None = Field(default=42, description="Random seed.")
    min_rows: int = Field(
        default=1000,
        ge=2,
        description="Fewest healthy rows to train on; below it nothing is registered.",
    )
    report_dir: Path | None = Field(
        default=None,
        description="Folder of the PNG and JSON report (default: "
        "<data_dir>/reports/NAME-vVERSION).",
    )
    promote: bool = Field(default=False, description="Make the new version live at once.")
    description: str = Field(default="", description="Free text stored with the model.")
    check_rtol: float = Field(
        default=1e-4, gt=0, description="Relative tolerance of the ONNX Runtime vs Keras check."
    )
    check_atol: float = Field(default=1e-5, gt=0, description="Absolute tolerance of that check.")

    @field_validator("units", mode="before")
    @classmethod
    def _split_units(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return tuple(int(part) for part in value.split(","))
            except ValueError:
                raise ValueError(f"units must look like 14,7,7,14, got {value!r}") from None
        return value

    @field_validator("units")
    @classmethod
    def _positive_units(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or any(u < 1 or u > 100_000 for u in value)):
            raise ValueError(f"units must be positive layer widths, got {value}")
        return value

    @model_validator(mode="after")
    def _one_window(self) -> TrainSettings:
        given = [
            f"--{name.replace('_', '-')}"
            for name in ("last", "start", "offsets", "same_window_as")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"choose one window option, got {' and '.join(given)}")
        if self.end is not None and self.start is None:
            raise ValueError("--end needs --start")
        return self

    def model_params(self, n_features: int = 18) -> dict[str, Any]:
        """The `lakeless.model.Autoencoder` arguments these settings ask for."""
        return {
            "units": self.units or default_units(n_features),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "threshold_quantile": self.threshold_quantile,
            "aggregation": self.aggregation,
            "calibration": self.calibration,
            "holdout": self.holdout,
            "healthy_only": not self.label_free,
            "seed": self.seed,
        }
