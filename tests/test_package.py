"""Smoke tests of the installed package (the notebooks hold the unit tests; `nbdev-test` runs them)."""
import subprocess
from pathlib import Path

import pytest
import torch

import cob_paper
from cob_paper.models import VGG, tsra_vgg_config, relu_vgg_config
from cob_paper.prune import ParameterTarget, ZScore, cob_prune


def test_console_script_is_installed():
    out = subprocess.run(["cob-paper", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "reproduce" in out.stdout and "figures" in out.stdout


def test_version():
    assert cob_paper.__version__


def test_public_api_prunes_a_model_outside_the_notebooks():
    torch.manual_seed(0)
    model = VGG(tsra_vgg_config(width_multiplier=1 / 16)).eval()
    calibration = [torch.randn(64, 3, 32, 32) for _ in range(2)]     # 128 rows: as many as a classifier subspace's channels
    x = torch.randn(2, 3, 32, 32)
    model, report = cob_prune(model, calibration, ParameterTarget(0.5))
    assert 0.4 < report.fraction_parameters_removed < 0.55
    assert model(x).shape == (2, 10)
    rebuilt = VGG(model.config)
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), model(x))


def test_relu_control_prunes_in_native_basis_only():
    relu = VGG(relu_vgg_config(width_multiplier=1 / 16))
    calibration = [torch.randn(256, 3, 32, 32)]                      # 256 rows: as many as a classifier unit's channels
    try:
        cob_prune(relu, calibration, ZScore(0.0))
    except ValueError as e:
        assert "native basis" in str(e)
    else:
        raise AssertionError("rotating a ReLU/BatchNorm model must fail")
    _, report = cob_prune(relu, calibration, ZScore(0.0), rotate=False)
    assert report.parameters_after < report.parameters_before


def test_any_network_meeting_the_contract_prunes_and_others_are_told_what_they_lack():
    import torch.nn as nn
    from cob_paper.models import PrunableUnit
    from cob_paper.prune import ChannelCount
    from cob_paper.tsra import TSRA

    class MLP(nn.Module):
        input_shape = (12,)
        def __init__(self):
            super().__init__()
            self.fc, self.act, self.out = nn.Linear(12, 8), TSRA((4, 4), channel_dim=-1), nn.Linear(8, 3)
        def forward(self, x): return self.out(self.act(self.fc(x)))
        def prunable_units(self): return [PrunableUnit("fc", self.fc, None, self.act, self.out)]

    torch.manual_seed(0)
    model, calibration, x = MLP().eval(), [torch.randn(64, 12)], torch.randn(5, 12)
    with torch.no_grad():
        before = model(x)
    cob_prune(model, calibration, ChannelCount(0))                     # the change of basis alone
    with torch.no_grad():
        assert (model(x) - before).abs().max() < 1e-5
    _, report = cob_prune(model, calibration, ChannelCount(1))
    assert report.layers[0].subspaces_after == [3, 3] and model(x).shape == (5, 3)
    with pytest.raises(TypeError, match="Sequential does not meet the prunable-network contract"):
        cob_prune(nn.Sequential(nn.Linear(12, 3)), calibration, ChannelCount(0))


def test_saved_models_are_checked(tmp_path):
    import json
    from cob_paper.models import load_model, save_model

    model = VGG(relu_vgg_config(width_multiplier=1 / 16)).eval()
    save_model(model, tmp_path / "m")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "m").eval()(x), model(x))
    weights = tmp_path / "m" / "weights.pt"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="is damaged"):
        load_model(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["pool"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"missing keys \['pool'\]"):
        load_model(tmp_path / "m")


def test_the_committed_spec_is_the_shared_one():
    "nbs/paper/SPEC.md is the notebooks' SPEC for readers of a clone; where the maintainers' original is beside it, they agree."
    root = Path(__file__).resolve().parents[1]
    original = root.parent / "shared" / "paper" / "SPEC.md"
    if not original.exists(): pytest.skip(f"no {original} beside this clone to compare with")
    assert (root / "nbs" / "paper" / "SPEC.md").read_bytes() == original.read_bytes(), \
        f"nbs/paper/SPEC.md differs from {original}: copy it over (the notebooks cite its sections)"
