"""Smoke tests of the installed package (the notebooks hold the unit tests; `nbdev-test` runs them)."""
import subprocess

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
    calibration = [torch.randn(8, 3, 32, 32) for _ in range(2)]
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
    calibration = [torch.randn(4, 3, 32, 32)]
    try:
        cob_prune(relu, calibration, ZScore(0.0))
    except ValueError as e:
        assert "native basis" in str(e)
    else:
        raise AssertionError("rotating a ReLU/BatchNorm model must fail")
    _, report = cob_prune(relu, calibration, ZScore(0.0), rotate=False)
    assert report.parameters_after < report.parameters_before
