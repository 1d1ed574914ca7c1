"""Parameter and multiply-add counting."""
import pytest
import torch
from torch import nn

from involution import Involution2d
from involution.analysis.complexity import (
    complexity_table,
    count_complexity,
    format_complexity_table,
    format_operator_costs,
    operator_costs,
)
from involution.models import create_model, model_info


def test_conv_and_linear_counts_follow_the_formula():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Flatten(),
                          nn.Linear(8 * 10 * 10, 5))
    counted = count_complexity(model, (3, 10, 10))
    assert counted.ops_by_type == {"conv": 8 * 10 * 10 * 3 * 9, "linear": 800 * 5}
    assert counted.params == 8 * 3 * 9 + 800 * 5 + 5


def test_involution_costs_k_squared_per_output_element():
    layer = Involution2d(32, kernel_size=7, stride=2, group_channels=16, reduction_ratio=4)
    counted = count_complexity(layer, (32, 16, 16))
    assert counted.ops_by_type["involution"] == 32 * 8 * 8 * 49
    # the kernel generator: reduce 32 -> 8 channels, span 8 -> 49 * 2, both at 8x8
    assert counted.ops_by_type["conv"] == 8 * 8 * (8 * 32 + 98 * 8)


def test_elementwise_counts_are_separate():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.ReLU())
    counted = count_complexity(model, (1, 4, 4), elementwise=True)
    assert counted.ops_by_type == {"conv": 32, "bias": 32, "norm": 64, "activation": 32}
    assert counted.macs == 32 and counted.elementwise_ops == 128


def test_resnet50_matches_torchvision_reported_count():
    from torchvision.models import ResNet50_Weights
    counted = count_complexity(create_model("resnet50"))
    assert counted.params == ResNet50_Weights.DEFAULT.meta["num_params"]
    assert counted.gmacs == pytest.approx(ResNet50_Weights.DEFAULT.meta["_ops"], abs=5e-4)


@pytest.mark.parametrize("name", ["rednet26", "dednet121"])
def test_a_model_on_the_meta_device_counts_the_same(name):
    # complexity_table counts on the meta device, which computes nothing.
    on_cpu = count_complexity(create_model(name), elementwise=True)
    with torch.device("meta"):
        on_meta = count_complexity(create_model(name), elementwise=True)
    assert on_meta == on_cpu and on_cpu.ops_by_type["involution"] > 0


def test_model_mode_is_restored():
    model = create_model("rednet26").train()
    count_complexity(model, (3, 64, 64))
    assert model.training


def test_table_is_within_a_few_percent_of_the_paper():
    rows = complexity_table(depths=(26, 50))
    by_model = {row["model"]: row for row in rows}
    assert [row["model"] for row in rows] == ["rednet26", "rednet50", "resnet26", "resnet50"]
    assert by_model["rednet26"]["params"] == 9_233_166
    for name in ("rednet26", "rednet50"):
        assert abs(by_model[name]["gap_percent"]) < 2.0
    assert abs(by_model["resnet50"]["gap_percent"]) < 0.05
    for row in rows:  # the reported figures are those of the registry records
        reported = model_info(row["model"]).reported
        expected = (reported.params_m, reported.gflops, reported.source) if reported else (
            None, None, "")
        assert (row["reported_params_m"], row["reported_gflops"], row["reported_by"]) == expected
    text = format_complexity_table(rows)
    assert "rednet26" in text and "9,233,166" in text and "reported by Li et al." in text


def test_operator_costs_follow_the_formulas():
    channels, k, size, r, group_channels = 64, 7, 14, 4, 16
    groups = channels // group_channels
    row = operator_costs(channels, k, size, size, group_channels, r)
    assert row["groups"] == groups
    assert row["conv_params"] == channels * channels * k * k
    assert row["conv_macs"] == size * size * channels * channels * k * k
    reduced = channels // r
    generator_params = channels * reduced + 2 * reduced + reduced * k * k * groups + k * k * groups
    assert row["involution_params"] == generator_params
    assert row["involution_apply_macs"] == size * size * channels * k * k
    assert row["involution_generate_macs"] == size * size * (channels * reduced + reduced * k * k * groups)
    assert row["involution_macs"] == row["involution_apply_macs"] + row["involution_generate_macs"]
    assert "MACs per 14x14" in format_operator_costs([row])
