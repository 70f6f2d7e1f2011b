"""DLinear and NLinear (Zeng, Chen, Zhang & Xu 2023, "Are Transformers Effective for Time Series Forecasting?",
AAAI 2023, arXiv:2205.13504): one linear map from the lookback window to the horizon, per channel.

* DLinear splits the window into a trend (moving average, kernel 25, the series' ends repeated so the average
  keeps the window's length) and the remainder, maps each with its own ``lookback -> horizon`` linear layer and
  adds the two (the paper's §4 and its reference code ``cure-lab/LTSF-Linear``).
* NLinear subtracts the window's last value, maps the rest linearly and adds the value back: a distribution shift
  between training and test (a trending series) does not move the weights' operating point.

Weights are shared across channels (the paper's default, ``individual=False``): channels are forecast
independently, with one model. Input ``B x lookback x C``, output ``B x horizon x C``; the lookback is fixed
by the weights, the batch is dynamic.

Self-contained: imports torch only, so it can be copied into a project as ``model.py``.
"""

import difflib
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["DYNAMIC_LENGTH", "ONNX_DYNAMO", "VARIANTS", "DLinear", "LinearConfig", "NLinear", "build_model"]

# export.py: both exporters handle these graphs; the TorchScript-based one is the faster of the two
ONNX_DYNAMO = False
# the linear maps are lookback x horizon: the lookback is fixed
DYNAMIC_LENGTH = False


@dataclass(frozen=True)
class LinearConfig:
    """Which linear model, and DLinear's moving-average kernel."""

    kind: Literal["dlinear", "nlinear"]
    kernel: int = 25


VARIANTS: dict[str, LinearConfig] = {
    "dlinear": LinearConfig("dlinear", kernel=25),
    "nlinear": LinearConfig("nlinear"),
}


class MovingAverage(nn.Module):
    """The trend of ``B x L x C``: a centred moving average with the first / last value repeated at the ends."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"the moving-average kernel must be odd and positive, got {kernel}")
        self.half = (kernel - 1) // 2
        self.pool = nn.AvgPool1d(kernel, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The trend, same shape as ``x``."""
        front = x[:, :1, :].expand(-1, self.half, -1)
        end = x[:, -1:, :].expand(-1, self.half, -1)
        padded = torch.cat([front, x, end], dim=1)
        return self.pool(padded.transpose(1, 2)).transpose(1, 2)


class DLinear(nn.Module):
    """Trend + remainder decomposition, one ``lookback -> horizon`` linear layer for each."""

    def __init__(self, cfg: LinearConfig, lookback: int, horizon: int) -> None:
        super().__init__()
        self.decompose = MovingAverage(cfg.kernel)
        self.trend = nn.Linear(lookback, horizon)
        self.seasonal = nn.Linear(lookback, horizon)
        # the reference code starts both maps as the window mean (weights 1/L), a forecast of the level
        for layer in (self.trend, self.seasonal):
            nn.init.constant_(layer.weight, 1.0 / lookback)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x horizon x C`` forecasts from ``x`` of ``B x lookback x C``."""
        trend = self.decompose(x)
        seasonal = x - trend
        out = self.trend(trend.transpose(1, 2)) + self.seasonal(seasonal.transpose(1, 2))
        return out.transpose(1, 2)


class NLinear(nn.Module):
    """Subtract the last value, one ``lookback -> horizon`` linear layer, add the last value back."""

    def __init__(self, cfg: LinearConfig, lookback: int, horizon: int) -> None:
        super().__init__()
        self.linear = nn.Linear(lookback, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x horizon x C`` forecasts from ``x`` of ``B x lookback x C``."""
        last = x[:, -1:, :]
        return self.linear((x - last).transpose(1, 2)).transpose(1, 2) + last


def build_model(arch: str, *, lookback: int, horizon: int, channels: int = 1, **kw: Any) -> DLinear | NLinear:
    """Build DLinear or NLinear by name.

    Args:
        arch: ``"dlinear"`` or ``"nlinear"``.
        lookback: steps in each input window (fixed by the weights).
        horizon: steps forecast at once (direct multi-horizon).
        channels: target series per window; weights are shared across them, so this does not change the model.
        **kw: ``kernel`` (DLinear's moving average); other options are an error.
    """
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown linear forecaster {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    unknown = set(kw) - {"kernel"}
    if unknown:
        raise TypeError(f"unexpected options for {arch}: {', '.join(sorted(unknown))}")
    cfg = LinearConfig(VARIANTS[arch].kind, kw.get("kernel", VARIANTS[arch].kernel))
    cls = DLinear if cfg.kind == "dlinear" else NLinear
    return cls(cfg, lookback, horizon)
