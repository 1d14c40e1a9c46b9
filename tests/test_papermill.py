"""The narrative notebooks run under papermill with their parameters (here: the smoke preset, temporary folders)."""
from pathlib import Path

import papermill
import pytest

from cob_paper.data import find_shared_cifar10

PAPER = Path(__file__).resolve().parent.parent / "nbs" / "paper"


@pytest.mark.parametrize("name", ["10_train_models", "40_importance_profiles"])
def test_narrative_notebook_runs_with_parameters(name, tmp_path, monkeypatch):
    monkeypatch.delenv("IN_TEST", raising=False)
    data = find_shared_cifar10(PAPER)
    if data is None: pytest.skip("no CIFAR-10 copy found; set COB_PAPER_DATA")
    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(str(PAPER / f"{name}.ipynb"), str(out), cwd=str(PAPER), progress_bar=False,
                               parameters={"preset": "smoke", "results_dir": str(tmp_path / "results"),
                                           "runs_dir": str(tmp_path / "runs"), "data_root": str(data)})
    written = list((tmp_path / "results").glob("*-smoke-*.json"))
    assert written, "the notebook wrote no results file"
