"""LSTM / GRU encoder with a direct multi-horizon head: the whole horizon from the encoder's final state at once.

LSTM: Hochreiter & Schmidhuber 1997; GRU: Cho et al. 2014, arXiv:1406.1078. The direct multi-horizon strategy
(one output per future step, no feeding forecasts back in) is MQ-RNN's (Wen et al. 2017, arXiv:1711.11053): it
avoids the error accumulation of recursive decoding and trains in one pass; Taieb & Atiya 2016 compare the
strategies.

The window's last value is subtracted before the encoder and added back to the forecast (NLinear's
normalization, Zeng et al. 2023, arXiv:2205.13504): a trending series leaves the range the RNN was trained on,
and an RNN extrapolates levels poorly, but changes from the last value stay in range.

Input ``B x lookback x (C + K)``: the C targets, then K covariates (observed series read alongside, e.g.
prices or weather; K = 0 without them); output ``B x horizon x C``, the targets only. The recurrence has no
weights along time, so the lookback can differ between training and inference (the ONNX graph's length axis is
dynamic).

Known covariates (J > 0: calendar features, planned promotions, whose future values are known when the forecast
is made) come as J more channels, and the input runs on over the horizon: ``B x (lookback + horizon) x (C + K +
J)``, the last ``horizon`` steps holding the known channels' future values (their other channels are never read).
The encoder reads all channels over the lookback; the head reads the encoder's final state and the known
channels' horizon values, flattened: MQ-RNN's global MLP takes the encoder state and all future known inputs in
the same way (Wen et al. 2017, above), as DeepAR (Salinas et al. 2020, arXiv:1704.04110) and the Temporal Fusion
Transformer (Lim et al. 2021, arXiv:1912.09363) feed known inputs over the forecast horizon to their decoders.
One tensor in keeps export.py's single-input ONNX and TorchScript paths.

Self-contained: imports torch only, so it can be copied into a project as ``model.py``.
"""

import difflib
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["DYNAMIC_LENGTH", "ONNX_DYNAMO", "VARIANTS", "RNNForecastConfig", "RNNForecaster", "build_model"]

# export.py: both exporters pass parity with dynamic batch and length; the TorchScript-based one maps to ONNX's
# LSTM/GRU ops and exports in seconds, the torch.export-based one takes 5-10x longer
ONNX_DYNAMO = False
# any lookback
DYNAMIC_LENGTH = True


@dataclass(frozen=True)
class RNNForecastConfig:
    """The cell, hidden size and depth of the encoder."""

    cell: Literal["lstm", "gru"]
    hidden: int
    layers: int


# 2 x 64 units: forecasting windows are short (tens to a few hundred steps) and series few; DeepAR (Salinas et
# al. 2020, arXiv:1704.04110) uses 2-3 layers of 40 cells, MQ-RNN 1-2 layers
VARIANTS: dict[str, RNNForecastConfig] = {
    "lstm_forecaster": RNNForecastConfig("lstm", 64, 2),
    "gru_forecaster": RNNForecastConfig("gru", 64, 2),
}


class RNNForecaster(nn.Module):
    """Stacked LSTM/GRU over the window (targets and covariates); a linear head maps its final state to
    ``horizon x C`` target values."""

    def __init__(
        self,
        cfg: RNNForecastConfig,
        horizon: int,
        channels: int = 1,
        *,
        dropout: float = 0.1,
        covariates: int = 0,
        known: int = 0,
    ) -> None:
        super().__init__()
        cell = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        inputs = channels + covariates + known
        self.rnn = cell(inputs, cfg.hidden, cfg.layers, batch_first=True, dropout=dropout if cfg.layers > 1 else 0.0)
        self.horizon, self.channels, self.known = horizon, channels, known
        self.head = nn.Linear(cfg.hidden + horizon * known, horizon * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x horizon x C`` forecasts from ``x`` of ``B x lookback x (C + K)``, or with known covariates of
        ``B x (lookback + horizon) x (C + K + J)``."""
        past = x[:, : -self.horizon] if self.known else x
        last = past[:, -1:, :]
        out, _ = self.rnn(past - last)
        # windows are equal-length (no padding), so the last output is the final state of the top layer
        state = out[:, -1, :]
        if self.known:  # the known channels' horizon values, B x (horizon * J), beside the encoder state
            future = x[:, -self.horizon :, -self.known :]
            state = torch.cat([state, future.flatten(1)], dim=1)
        step = self.head(state).view(-1, self.horizon, self.channels)
        return step + last[:, :, : self.channels]


def build_model(
    arch: str,
    *,
    lookback: int,
    horizon: int,
    channels: int = 1,
    dropout: float = 0.1,
    covariates: int = 0,
    known: int = 0,
    **kw: Any,
) -> RNNForecaster:
    """Build an RNN forecaster by name.

    Args:
        arch: ``"lstm_forecaster"`` or ``"gru_forecaster"``.
        lookback: steps in each training window (any length works at inference).
        horizon: steps forecast at once.
        channels: target series per window (forecast jointly).
        dropout: between stacked layers.
        covariates: extra input channels after the targets (read, not forecast).
        known: known covariates after those, read over the lookback and the horizon (the input is
            ``lookback + horizon`` steps long).
        **kw: options of other families are an error.
    """
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown RNN forecaster {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    if kw:
        raise TypeError(f"unexpected options for {arch}: {', '.join(kw)}")
    del lookback  # the recurrence does not depend on it
    return RNNForecaster(VARIANTS[arch], horizon, channels, dropout=dropout, covariates=covariates, known=known)
