"""Notebook 04's measurement of how each family amplifies an error in batch-norm statistics."""
import math

import torch

from involution.workbook import instability
from involution.workbook.instability import Amplification


def _rows(values):
    """Rows from {(model, zero_init): [largest output at each of FACTORS]}."""
    return [Amplification(model, zero_init, factor, value)
            for (model, zero_init), outputs in values.items()
            for factor, value in zip(instability.FACTORS, outputs)]


def test_the_summary_reads_every_direction_from_the_numbers():
    rows = _rows({("rednet26", True): [1.0, 2.0, 5.0, 50.0], ("rednet26", False): [1.0, math.nan, math.nan, math.nan],
                  ("resnet26", True): [2.0, 3.0, 6.0, 400.0], ("resnet26", False): [1.0, 10.0, 100.0, 1e6]})
    lines = instability.summary(rows)
    # At zero ResNet's output grew 200-fold, RedNet's 50-fold: ResNet amplified more.
    assert lines[0].endswith("RedNet-26's largest output grew 50-fold, ResNet-26's largest output grew 200-fold; "
                             "ResNet-26 amplified the error more.")
    # An overflow counts as more than any finite growth.
    assert lines[1].endswith("RedNet-26 amplified the error more.") and "overflowed to NaN" in lines[1]
    assert lines[2].endswith("the start at zero amplified the error less.")
    assert lines[3].endswith("the start at zero amplified the error less.")
    tied = _rows({("rednet26", True): [1.0, 2.0, 3.0, 4.0], ("resnet26", True): [1.0, 2.0, 3.0, 4.0],
                  ("rednet26", False): [1.0, 2.0, 3.0, 4.0], ("resnet26", False): [1.0, 2.0, 3.0, 8.0]})
    assert instability.summary(tied)[0].endswith("neither amplified the error more.")
    assert instability.summary(tied)[2].endswith("the start made no difference.")


def test_measure_gives_exact_statistics_at_factor_one_and_leaves_the_model_as_it_was(monkeypatch):
    built = []
    create = instability.create_model
    monkeypatch.setattr(instability, "create_model",
                        lambda *args, **kwargs: built.append(create(*args, **kwargs)) or built[-1])
    options = {"resnet26": {"planes": 16, "small_input": True}}
    rows = instability.measure(["resnet26"], options, image_size=32, images=4, factors=(1.0, 2.0))
    assert [(row.zero_init_residual, row.factor) for row in rows] == [(True, 1.0), (True, 2.0),
                                                                      (False, 1.0), (False, 2.0)]
    assert all(row.finite for row in rows)
    # Every batch norm twice too large makes the outputs larger.
    assert rows[1].largest_output > rows[0].largest_output and rows[3].largest_output > rows[2].largest_output
    # The running statistics are restored after each factor: factor 1 again gives the first output.
    model = built[-1]
    batch = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert model(batch).abs().max().item() == rows[2].largest_output
