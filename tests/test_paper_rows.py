"""Every row of the paper's Tables 4/5 is in the registry, with parameters close to the paper's."""
from __future__ import annotations

import pytest

from benchmark import paper
from models import create_model, get_model_info

TOLERANCE = 0.10


def test_paper_tables_agree_on_rows():
    assert paper.paper_rows() == list(paper.table5()["method"])
    assert len(paper.paper_rows()) == 32


def test_every_paper_row_is_registered():
    missing = [row for row in paper.paper_rows() if row not in paper.registered_rows()]
    assert not missing, f"paper rows without a registered model: {missing}"


def test_paper_names_are_real_rows():
    unknown = sorted(set(paper.registered_rows()) - set(paper.paper_rows()))
    assert not unknown, f"paper_name values that are not rows of Table 4: {unknown}"


@pytest.mark.parametrize("row", paper.paper_rows())
def test_params_within_tolerance_or_explained(row):
    registered = paper.registered_rows()
    if row not in registered:
        pytest.skip(f"{row} not registered (test_every_paper_row_is_registered reports it)")
    name = registered[row]
    ours = sum(p.numel() for p in create_model(name).parameters())
    theirs = float(paper.table4().set_index("method").loc[row, "params"])
    relative = abs(ours - theirs) / theirs
    info = get_model_info(name)
    if relative > TOLERANCE:
        assert "param" in info.notes.lower(), (
            f"{name}: {ours:,} params vs paper {theirs:,.0f} ({relative:+.0%}); "
            "outside 10% needs a reason in ModelInfo.notes (mentioning params)"
        )
