"""The narrative notebooks run under papermill with their parameters: here another preset of the record than their default."""
import json
from pathlib import Path

import papermill
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "nbs" / "paper"


@pytest.mark.parametrize("name,label,figure", [("10_train_models", True, True), ("20_fixed_ratio", True, True),
                                               ("30_threshold", True, False), ("40_importance_profiles", False, True)])
def test_narrative_notebook_shows_the_preset_it_is_given(name, label, figure, tmp_path):
    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(str(PAPER / f"{name}.ipynb"), str(out), cwd=str(PAPER), progress_bar=False,
                               parameters={"preset": "laptop", "results_dir": str(ROOT / "results")})
    outputs = json.dumps([c.get("outputs", []) for c in json.loads(out.read_text())["cells"]])
    assert ("image/png" in outputs) == figure and '"stderr"' not in outputs     # a figure where it draws one; nothing complained
    assert not label or "LAPTOP CPU RUN" in outputs                     # of the preset it was given, labelled as a CPU run
