"""The time-series model files (templates/models): shapes, a backward pass, padding invariance, the bidirectional
RNN against PyTorch's packed-sequence RNN, and ONNX export checked against onnxruntime with the exporter each file
declares (ONNX_DYNAMO), dynamic batch and, where the file declares DYNAMIC_LENGTH, dynamic length."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from archadvisor.resources import load_model_module

# (model file, variant): every variant each classifier file offers is listed in CLASSIFIERS; the test below
# checks that the table and the files' VARIANTS agree, so a new variant cannot go untested
CLASSIFIER_FILES = ("rnn_classifier", "transformer_classifier", "conv1d_baselines", "inceptiontime")
FORECASTER_FILES = ("rnn_forecaster", "patchtst", "dlinear")


def _variants(files: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(f, arch) for f in files for arch in load_model_module(f).VARIANTS]


CLASSIFIERS = _variants(CLASSIFIER_FILES)
FORECASTERS = _variants(FORECASTER_FILES)
LOOKBACK, HORIZON = 32, 6


def classifier(file: str, arch: str, classes: int = 3, channels: int = 2, **kw) -> nn.Module:
    torch.manual_seed(0)
    return load_model_module(file).build_model(arch, classes, in_channels=channels, **kw)


def forecaster(file: str, arch: str, channels: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return load_model_module(file).build_model(arch, lookback=LOOKBACK, horizon=HORIZON, channels=channels)


def padded_batch(lengths: list[int], channels: int = 2, seed: int = 0) -> torch.Tensor:
    """B x C x max(lengths) random series, NaN after each row's length (the npz convention)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), channels, max(lengths), generator=g)
    for i, n in enumerate(lengths):
        x[i, :, n:] = float("nan")
    return x


@pytest.mark.parametrize(("file", "arch"), CLASSIFIERS, ids=[a for _, a in CLASSIFIERS])
def test_classifier_shapes_and_backward(file, arch):
    model = classifier(file, arch)
    x = padded_batch([40, 25, 9])
    logits = model(x)
    assert logits.shape == (3, 3)
    assert torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing[:3]}"


@pytest.mark.parametrize(("file", "arch"), CLASSIFIERS, ids=[a for _, a in CLASSIFIERS])
def test_classifier_logits_do_not_depend_on_padding(file, arch):
    model = classifier(file, arch).eval()
    x = padded_batch([40, 25, 9])
    with torch.no_grad():
        batched = model(x)
        for i, n in enumerate([40, 25, 9]):
            alone = model(x[i : i + 1, :, :n])
            scale = max(1.0, batched[i].abs().max().item())
            diff = (batched[i] - alone[0]).abs().max().item() / scale
            assert diff < 1e-5, f"row {i} (length {n}): padded and alone differ by {diff:.2e}"


def test_padding_changes_nothing_only_where_it_is_padding():
    """The invariance test can fail: a series that really is longer gives different logits."""
    model = classifier("conv1d_baselines", "fcn").eval()
    x = padded_batch([40])
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x[:, :, :25]), atol=1e-4)


@pytest.mark.parametrize("arch", ["bilstm", "bigru", "lstm"])
def test_rnn_final_states_equal_packed_sequence_rnn(arch):
    """Our per-sample reversal computes what nn.LSTM/nn.GRU compute on packed sequences: h_n of each direction
    (readout "final") and the outputs' mean over each series' steps (readout "mean", the default)."""
    model = classifier("rnn_classifier", arch).eval()
    cfg = model.cfg
    ref = (nn.LSTM if cfg.cell == "lstm" else nn.GRU)(
        2, cfg.hidden, cfg.layers, batch_first=True, bidirectional=cfg.bidirectional
    )
    state = {}
    for layer in range(cfg.layers):
        for suffix, stack in (("", model.forward_layers), ("_reverse", model.backward_layers)):
            if suffix and not cfg.bidirectional:
                continue
            for key, value in stack[layer].state_dict().items():
                state[key.replace("_l0", f"_l{layer}") + suffix] = value
    ref.load_state_dict(state, strict=True)
    lengths = [30, 17, 4, 1]
    x = padded_batch(lengths)
    with torch.no_grad():
        packed = nn.utils.rnn.pack_padded_sequence(
            torch.nan_to_num(x).transpose(1, 2), torch.tensor(lengths), batch_first=True, enforce_sorted=False
        )
        _, h = ref(packed)
        h = h[0] if isinstance(h, tuple) else h
        expected = torch.cat([h[-2], h[-1]], -1) if cfg.bidirectional else h[-1]
        got = model.forward_features(x)
        # the default head input: the top layer's outputs averaged over each series' own steps
        out, _ = nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True)
        mean = out.sum(1) / torch.tensor(lengths, dtype=out.dtype).unsqueeze(1)
        pooled = model.pooled_features(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled, mean, atol=1e-5, rtol=1e-5)
    assert model.cfg.readout == "mean"
    # and the naive out[:, -1] of the padded batch is something else (what this design avoids)
    with torch.no_grad():
        out, _ = ref(torch.nan_to_num(x).transpose(1, 2))
    assert not torch.allclose(out[:, -1], expected, atol=1e-3)


def test_rnn_readout_final_classifies_from_the_final_states_and_a_bad_readout_is_refused():
    mod = load_model_module("rnn_classifier")
    torch.manual_seed(0)
    model = mod.build_model("bigru", 3, 2, readout="final").eval()
    x = padded_batch([30, 12])
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.fc(model.forward_features(x)))
        assert not torch.allclose(model.fc(model.pooled_features(x)), model(x), atol=1e-4)
    with pytest.raises(ValueError, match="supported are mean, final"):
        mod.build_model("gru", 3, 2, readout="last")


@pytest.mark.parametrize(("file", "arch"), FORECASTERS, ids=[a for _, a in FORECASTERS])
def test_forecaster_shapes_and_backward(file, arch):
    model = forecaster(file, arch)
    x = torch.randn(4, LOOKBACK, 2)
    y = model(x)
    assert y.shape == (4, HORIZON, 2)
    nn.functional.l1_loss(y, torch.randn(4, HORIZON, 2)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"


# DLinear has no window normalization (its maps only start as a level forecast): the others are level-equivariant
NORMALIZED = [(f, a) for f, a in FORECASTERS if a != "dlinear"]


@pytest.mark.parametrize(("file", "arch"), NORMALIZED, ids=[a for _, a in NORMALIZED])
def test_forecaster_follows_a_level_shift(file, arch):
    """Every forecaster normalizes each window (NLinear's last value or RevIN): adding a constant to the window
    adds it to the forecast, so a trending series is not pushed out of the trained range."""
    model = forecaster(file, arch).eval()
    x = torch.randn(2, LOOKBACK, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(x + 100.0), model(x) + 100.0, atol=1e-3, rtol=1e-4)


def test_dlinear_trend_keeps_length_and_constants():
    mod = load_model_module("dlinear")
    x = torch.randn(2, LOOKBACK, 3)
    trend = mod.MovingAverage(25)(x)
    assert trend.shape == x.shape
    # a constant series is its own trend (the repeated ends keep the average unbiased at the borders)
    torch.testing.assert_close(mod.MovingAverage(25)(torch.full((1, 10, 1), 3.0)), torch.full((1, 10, 1), 3.0))


def _families(files: tuple[str, ...], pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One variant per file for the (slow-ish) export tests: the one with the fewest parameters."""
    best: dict[str, tuple[str, str]] = {}
    for f in files:
        mod = load_model_module(f)
        with torch.device("meta"):
            sizes = {
                a: sum(
                    p.numel()
                    for p in (
                        mod.build_model(a, 3, in_channels=2)
                        if f in CLASSIFIER_FILES
                        else mod.build_model(a, lookback=LOOKBACK, horizon=HORIZON, channels=2)
                    ).parameters()
                )
                for a in mod.VARIANTS
            }
        best[f] = (f, min(sizes, key=sizes.get))
    return list(best.values())


def onnx_export(model: nn.Module, example: torch.Tensor, path: Path, dynamo: bool, length_axis: int | None) -> None:
    names = {"input_names": ["series"], "output_names": ["out"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            shapes = {0: torch.export.Dim("batch")}
            if length_axis is not None:
                shapes[length_axis] = torch.export.Dim("length")
            torch.onnx.export(
                model, (example,), str(path), dynamo=True, dynamic_shapes=(shapes,), verbose=False, **names
            )
        else:
            axes = {0: "batch"} if length_axis is None else {0: "batch", length_axis: "length"}
            torch.onnx.export(
                model, (example,), str(path), dynamo=False, dynamic_axes={"series": axes, "out": {0: "batch"}}, **names
            )


def onnx_diff(path: Path, model: nn.Module, inputs: list[torch.Tensor]) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            got = session.run(None, {"series": x.numpy()})[0]
            expected = model(x).numpy()
            worst = max(worst, float(np.abs(got - expected).max()) / max(1.0, float(np.abs(expected).max())))
    return worst


@pytest.mark.parametrize(("file", "arch"), _families(CLASSIFIER_FILES, CLASSIFIERS), ids=CLASSIFIER_FILES)
def test_classifier_onnx_matches_onnxruntime(file, arch, tmp_path):
    mod = load_model_module(file)
    model = classifier(file, arch).eval()
    path = tmp_path / "model.onnx"
    onnx_export(model, padded_batch([40, 25]), path, mod.ONNX_DYNAMO, 2 if mod.DYNAMIC_LENGTH else None)
    # other batch sizes, other padding, and (dynamic length) other lengths than the traced example
    lengths = ([57, 12, 30], [5]) if mod.DYNAMIC_LENGTH else ([40, 12, 30], [40])
    diff = onnx_diff(path, model, [padded_batch(ls, seed=i + 1) for i, ls in enumerate(lengths)])
    assert diff < 1e-4, f"onnxruntime differs by {diff:.2e} (scaled)"


@pytest.mark.parametrize(("file", "arch"), _families(FORECASTER_FILES, FORECASTERS), ids=FORECASTER_FILES)
def test_forecaster_onnx_matches_onnxruntime(file, arch, tmp_path):
    mod = load_model_module(file)
    model = forecaster(file, arch).eval()
    path = tmp_path / "model.onnx"
    onnx_export(model, torch.randn(2, LOOKBACK, 2), path, mod.ONNX_DYNAMO, 1 if mod.DYNAMIC_LENGTH else None)
    g = torch.Generator().manual_seed(1)
    steps = 2 * LOOKBACK if mod.DYNAMIC_LENGTH else LOOKBACK
    inputs = [torch.randn(3, steps, 2, generator=g) * 5 + 20, torch.randn(1, LOOKBACK, 2, generator=g)]
    diff = onnx_diff(path, model, inputs)
    assert diff < 1e-4, f"onnxruntime differs by {diff:.2e} (scaled)"


@pytest.mark.parametrize("file", CLASSIFIER_FILES + FORECASTER_FILES)
def test_weights_round_trip_with_weights_only(file):
    mod = load_model_module(file)
    arch = next(iter(mod.VARIANTS))
    model = classifier(file, arch) if file in CLASSIFIER_FILES else forecaster(file, arch)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = classifier(file, arch) if file in CLASSIFIER_FILES else forecaster(file, arch)
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()  # so only the loaded state can make the two equal
    fresh.load_state_dict(state, strict=True)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True))


@pytest.mark.parametrize("file", CLASSIFIER_FILES + FORECASTER_FILES)
def test_unknown_variant_is_a_clear_error(file):
    mod = load_model_module(file)
    with pytest.raises(ValueError, match="not_a_model"):
        if file in CLASSIFIER_FILES:
            mod.build_model("not_a_model", 3)
        else:
            mod.build_model("not_a_model", lookback=LOOKBACK, horizon=HORIZON)
