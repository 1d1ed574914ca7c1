"""involution.workbook.figures: kernel capture and summaries, and the figures of the notebooks and slides."""
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from involution import Involution2d, analysis
from involution.analysis.complexity import complexity_table, operator_costs
from involution.models import create_model
from involution.workbook import figures, kernel_figures


@pytest.fixture(scope="module")
def rednet_kernels():
    """A real RedNet-26's kernels for two 32x32 images, and the images."""
    torch.manual_seed(0)
    model = create_model("rednet26", num_classes=10).eval()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad(), analysis.capture_kernels(model) as kernels:
        model(images)
    return images, kernels


def test_capture_kernels_records_every_layer_in_forward_order(rednet_kernels):
    _, kernels = rednet_kernels
    assert list(kernels)[:2] == ["stem.1", "layer1.0.conv2"] and len(kernels) == 9
    assert kernels["stem.1"].shape == (2, 2, 3, 3, 16, 16)
    assert kernels["layer1.0.conv2"].shape == (2, 4, 7, 7, 8, 8)


@pytest.mark.parametrize("summary", analysis.KERNEL_SUMMARIES)
def test_kernel_summary_is_one_value_per_pixel_and_varies_over_the_image(summary):
    torch.manual_seed(0)
    layer = Involution2d(32, kernel_size=7).eval()
    with torch.no_grad():
        kernel = layer.kernel_generator(torch.randn(2, 32, 12, 10))
    summary_map = analysis.kernel_summary(kernel, summary)
    assert summary_map.shape == (2, 12, 10)
    assert summary_map[0].std() > 1e-4  # spatially specific: differs from pixel to pixel
    assert not torch.equal(summary_map[0], summary_map[1])  # and from image to image


def test_kernel_summaries_on_a_kernel_that_is_the_same_everywhere():
    # A convolution's kernel is the same at every pixel: "deviation" is 0 there.
    constant = torch.full((1, 2, 3, 3, 4, 5), 0.5)
    assert torch.allclose(analysis.kernel_summary(constant, "deviation"), torch.zeros(1, 4, 5))
    assert torch.allclose(analysis.kernel_summary(constant, "sum"), torch.full((1, 4, 5), 4.5))
    assert torch.allclose(analysis.kernel_summary(constant, "norm"), torch.full((1, 4, 5), 0.5))
    spike = constant.clone()
    spike[0, :, :, :, 2, 3] = 2.0
    deviation = analysis.kernel_summary(spike, "deviation")[0]
    assert deviation.argmax() == 2 * 5 + 3  # the one different pixel stands out


def test_kernel_summary_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown kernel summary"):
        analysis.kernel_summary(torch.zeros(1, 1, 3, 3, 2, 2), "mean")
    with pytest.raises(ValueError, match=r"\(B, G, K, K, H, W\)"):
        analysis.kernel_summary(torch.zeros(1, 9, 2, 2))
    with pytest.raises(ValueError, match="square"):
        analysis.kernel_summary(torch.zeros(1, 1, 3, 5, 2, 2))


def test_summary_at_pixels_reads_the_cell_each_input_pixel_falls_in():
    # Layer "coarse" maps a 16 px image onto 4x4 cells (stride 4), "fine" onto 8x8 (stride 2).
    coarse, fine = torch.zeros(2, 1, 3, 3, 4, 4), torch.zeros(2, 1, 3, 3, 8, 8)
    coarse[1, :, :, :, 3, 1] = 1.0  # image 1, cell (3, 1): input rows 12-15, columns 4-7
    fine[1, :, :, :, 0, 7] = 2.0    # image 1, cell (0, 7): input rows 0-1, columns 14-15
    values = analysis.summary_at_pixels({"coarse": coarse, "fine": fine}, [(13, 5), (1, 15), (0, 0)],
                                        image_size=16, summary="norm", index=1)
    assert values == {"coarse": [1.0, 0.0, 0.0], "fine": [0.0, 2.0, 0.0]}
    assert analysis.summary_at_pixels({"fine": fine}, [(1, 15)], 16, "norm", index=0) == {"fine": [0.0]}
    with pytest.raises(ValueError, match=r"pixel \(16, 0\) lies outside the 16x16 image"):
        analysis.summary_at_pixels({"fine": fine}, [(16, 0)], 16)


def test_heatmaps_draw_one_map_per_layer_over_the_image(rednet_kernels):
    images, kernels = rednet_kernels
    figure = kernel_figures.plot_kernel_heatmaps(images[1], kernels, index=1, title="t")
    assert isinstance(figure, Figure)
    panels = [a for a in figure.axes if a.get_visible() and a.get_title()]
    assert len(panels) == 1 + len(kernels)
    assert panels[1].get_title() == "stem.1\n16x16 px, 3x3\n2 groups"
    drawn = panels[1].get_images()[-1].get_array()
    expected = analysis.kernel_summary(kernels["stem.1"], "deviation")[1].numpy()
    np.testing.assert_allclose(drawn, expected, rtol=1e-6)
    # The photograph is opaque under every map, the map half-transparent over it.
    for panel in panels[1:]:
        photo, heat = panel.get_images()
        assert photo.get_alpha() == 1.0 and heat.get_alpha() == pytest.approx(0.55)
        # One colour scale for every map of the figure, from zero to the largest value of any layer.
        assert heat.get_clim() == (0, kernel_figures.heatmap_scale(kernels))
    # One colour bar, which says what the colour means: the summary's name and unit.
    (bar,) = [a for a in figure.axes if a.get_ylabel().startswith(kernel_figures.SUMMARY_LABELS["deviation"])]
    assert bar.get_ylabel().endswith("(one scale for every map)")
    assert "no unit" in kernel_figures.SUMMARY_LABELS["deviation"]
    norm = kernel_figures.plot_kernel_heatmaps(images[0], kernels, summary="norm", layers=["stem.1"], vmax=2.5)
    assert norm.axes[1].get_images()[-1].get_clim() == (0, 2.5)  # a scale shared with another figure
    assert any(a.get_ylabel().startswith("norm: RMS kernel weight") for a in norm.axes)
    with pytest.raises(ValueError, match="no kernels captured"):
        kernel_figures.plot_kernel_heatmaps(images[0], kernels, layers=["nope"])
    with pytest.raises(ValueError, match="denormalize"):
        kernel_figures.plot_kernel_heatmaps(images[0] * 5 - 2, kernels)


def test_kernels_at_pixels_shows_the_kernel_of_each_marked_pixel(rednet_kernels):
    images, kernels = rednet_kernels
    layers = ["stem.1", "layer2.0.conv2"]
    pixels = [(0, 0), (31, 31), (10, 20)]
    figure = kernel_figures.plot_kernels_at_pixels(images[0], kernels, pixels, layers=layers, group=1)
    kernel_axes = [a for a in figure.axes if a.get_images() and a.get_images()[0].get_array().shape
                   in ((3, 3), (7, 7))]
    assert len(kernel_axes) == len(layers) * len(pixels)
    # Pixel (31, 31) of the 32x32 image is cell (15, 15) of the stem's 16x16 grid.
    np.testing.assert_allclose(kernel_axes[1].get_images()[0].get_array(),
                               kernels["stem.1"][0, 1, :, :, 15, 15].numpy())
    assert all(a.images[-1].colorbar.ax.get_ylabel() == "kernel\nweight"
               for a in kernel_axes if a.images[-1].colorbar)
    with pytest.raises(ValueError, match="outside"):
        kernel_figures.plot_kernels_at_pixels(images[0], kernels, [(32, 0)], layers=layers)
    with pytest.raises(ValueError, match="group 5"):
        kernel_figures.plot_kernels_at_pixels(images[0], kernels, [(1, 1)], layers=layers, group=5)
    with pytest.raises(ValueError, match="pixels"):
        kernel_figures.plot_kernels_at_pixels(images[0], kernels, [], layers=layers)


def _window_panels(figure):
    """{title: square widths drawn} of the photograph panels (the ones with window squares)."""
    return {a.get_title(): [patch.get_width() for patch in a.patches] for a in figure.axes if a.patches}


def test_kernels_at_pixels_draws_the_deep_layers_7x7_window_beside_the_stems(rednet_kernels):
    images, kernels = rednet_kernels
    # On a 32x32 image the stem's map is 16x16, layer1.0.conv2's 8x8 (stride 1).
    assert kernels["layer1.0.conv2"].shape[-2:] == (8, 8)
    figure = kernel_figures.plot_kernels_at_pixels(images[0], kernels, [(5, 5), (20, 25)],
                                        layers=["stem.1", "layer1.0.conv2"])
    windows = _window_panels(figure)
    # 3 cells of 2 px for the stem; 7 cells of 4 px, most of the image, for the 8x8 map (its title
    # says so), drawn only where it lies on the image: 28 px around column 5 and 25 end at the border.
    assert windows == {"stem.1: 3x3 window\n= 6x6 of 32x32 px": [6.0, 6.0],
                       "layer1.0.conv2: 7x7 window\n= 28x28 of 32x32 px": [19.5, 20.5]}
    for axis in figure.axes:
        for patch in axis.patches:  # no window's edge runs off the picture
            assert patch.get_x() >= -0.5 and patch.get_x() + patch.get_width() <= 31.5
            assert patch.get_y() >= -0.5 and patch.get_y() + patch.get_height() <= 31.5


def test_window_of_a_strided_layer_spans_its_finer_input_map(rednet_kernels):
    images, kernels = rednet_kernels
    # layer2.0.conv2 has stride 2: its 4x4 output grid, its 8x8 input map.
    assert kernel_figures.window_side(kernels["layer2.0.conv2"], 32, stride=2) == 28.0
    figure = kernel_figures.plot_kernels_at_pixels(images[0], kernels, [(5, 5)], layers=["stem.1", "layer2.0.conv2"],
                                        strides={"layer2.0.conv2": 2})
    assert _window_panels(figure)["layer2.0.conv2: 7x7 window\n= 28x28 of 32x32 px"] == [19.5]  # on the image


def test_one_pixels_kernels_at_every_layer_under_their_windows(rednet_kernels):
    images, kernels = rednet_kernels
    figure = kernel_figures.plot_pixel_kernels(images[1], kernels, (20, 9), index=1,
                                               strides={"layer2.0.conv2": 2}, group=1)
    assert len(figure.axes) == 2 * len(kernels)
    photos, weights = figure.axes[:len(kernels)], figure.axes[len(kernels):]
    assert photos[0].get_title().startswith("stem.1: 3x3 window")
    # The bottom row holds each layer's kernel at the grid cell covering the pixel.
    grid = kernels["layer1.0.conv2"].shape[-2:]  # 8x8 on a 32x32 image: cell (5, 2)
    expected = kernels["layer1.0.conv2"][1, 1, :, :, 20 * grid[0] // 32, 9 * grid[1] // 32].numpy()
    np.testing.assert_array_equal(weights[1].get_images()[0].get_array(), expected)
    with pytest.raises(ValueError, match="outside"):
        kernel_figures.plot_pixel_kernels(images[0], kernels, (40, 3))


def _metrics(offset):
    return {"epoch": [0.0, 1.0, 2.0], "train/loss_epoch": [2.0, 1.5, 1.0 + offset],
            "val/loss": [2.1, 1.7, 1.4], "train/top1": [0.1, 0.4, 0.6], "val/top1": [0.1, 0.3, 0.5]}


def test_training_curves_plot_train_and_val_of_every_run():
    figure = figures.plot_training_curves({"RedNet-26": _metrics(0), "ResNet-26": _metrics(0.1)},
                                      title="sample set, not Caltech-256")
    loss_axis, accuracy_axis = figure.axes
    assert [line.get_label() for line in loss_axis.get_lines()] == [
        "RedNet-26 train", "RedNet-26 val", "ResNet-26 train", "ResNet-26 val"]
    assert list(loss_axis.get_lines()[0].get_xdata()) == [1, 2, 3]  # epochs completed
    assert list(accuracy_axis.get_lines()[1].get_ydata()) == pytest.approx([10, 30, 50])
    assert figure.get_suptitle() == "sample set, not Caltech-256"
    with pytest.raises(ValueError):
        figures.plot_training_curves({})


def test_runs_of_one_model_share_its_colour_and_each_seed_has_its_own_marker():
    curves = {f"{model} seed {seed}": _metrics(seed / 10) for model in ("RedNet-26", "ResNet-26") for seed in (0, 1, 2)}
    figure = figures.plot_training_curves(curves)
    loss_axis, accuracy_axis = figure.axes
    train = {line.get_label(): line for line in loss_axis.get_lines() if line.get_label().endswith("train")}
    assert len({line.get_color() for line in train.values()}) == 2  # one per model
    for model in ("RedNet-26", "ResNet-26"):
        markers = [train[f"{model} seed {seed} train"].get_marker() for seed in (0, 1, 2)]
        assert len(set(markers)) == 3  # the seeds can be told apart
    legend = [text.get_text() for text in accuracy_axis.get_legend().get_texts()]
    assert legend == ["RedNet-26 train", "RedNet-26 val", "ResNet-26 train", "ResNet-26 val",
                      "seed 0", "seed 1", "seed 2"]


def _points_by_label(axis) -> dict[str, list[tuple[float, float]]]:
    """The scatter points of each legend entry, sorted (public API: the legend's handles)."""
    handles, labels = axis.get_legend_handles_labels()
    return {label: sorted(map(tuple, handle.get_offsets().tolist()))
            for handle, label in zip(handles, labels)}


def test_complexity_table_figure_shows_the_counted_numbers():
    rows = complexity_table(depths=(26,), input_size=(3, 64, 64))
    figure = figures.plot_complexity_table(rows, (3, 64, 64))
    table = figure.axes[0].tables[0]
    texts = {cell.get_text().get_text() for cell in table.get_celld().values()}
    assert f"{rows[0]['params']:,}" in texts and "rednet26" in texts and "Li et al. 2021" in texts
    with pytest.raises(ValueError):
        figures.plot_complexity_table([])


def test_operator_costs_figure():
    by_channels = [operator_costs(c, 3, 4, 4) for c in (16, 32)]
    by_kernel = [operator_costs(16, k, 4, 4) for k in (3, 5)]
    figure = figures.plot_operator_costs(by_channels, by_kernel)
    assert len(figure.axes) == 4
    params_axis = figure.axes[0]
    assert list(params_axis.get_lines()[0].get_ydata()) == [r["conv_params"] for r in by_channels]
    assert list(params_axis.get_lines()[1].get_ydata()) == [r["involution_params"] for r in by_channels]
    # One legend for the figure, outside the panels, so that none covers the data.
    assert all(axis.get_legend() is None for axis in figure.axes) and len(figure.legends) == 1
    assert [text.get_text() for text in figure.legends[0].get_texts()] == [
        "KxK convolution, C -> C", "involution (incl. kernel generation)"]


def test_instability_figure_draws_kernels_of_involution_runs_and_losses_of_all():
    growth = {"rednet50_lr08": {"step": [0, 1], "kernel_absmax": [7.0, 70.0], "train_loss": [2.3, 2.5]},
              "resnet50_lr08": {"step": [], "kernel_absmax": [], "train_loss": []}}
    losses = {"rednet50_lr08": {"step": [0, 1], "train_loss": [2.3, 2.5]},
              "resnet50_lr08": {"step": [0, 1], "train_loss": [2.3, 9.0]}}
    kernel_axis, loss_axis = figures.plot_instability(growth, losses, "shapes set, 32 px").axes
    assert [line.get_label() for line in kernel_axis.get_lines()] == ["rednet50_lr08"]
    assert [line.get_label() for line in loss_axis.get_lines()] == ["rednet50_lr08", "resnet50_lr08"]
    assert list(loss_axis.get_lines()[1].get_ydata()) == [2.3, 9.0]
    assert "shapes set, 32 px" in kernel_axis.get_title()




def test_test_top1_over_seeds_shows_every_run_and_each_mean_with_its_interval():
    rows = [{"label": "RedNet-26", "test_top1": v} for v in (80.0, 82.0, 81.0)] + \
           [{"label": "ResNet-26", "test_top1": v} for v in (70.0, 71.0)]
    (axis,) = figures.plot_test_top1_over_seeds(rows, title="shapes set").axes
    assert [label.get_text() for label in axis.get_xticklabels()] == ["RedNet-26\n(3 seeds)", "ResNet-26\n(2 seeds)"]
    texts = [text.get_text() for text in axis.texts]
    from scipy import stats
    half = stats.t.ppf(0.975, 2) * stats.sem([80.0, 82.0, 81.0])
    assert f"mean 81.0%\n95% interval \u00b1 {half:.1f}" in texts
    low, high = axis.get_ylim()
    assert 60 < low < 70 and 82 < high <= 100.5  # zoomed to the runs, not 0-100
    with pytest.raises(ValueError, match="no tested runs"):
        figures.plot_test_top1_over_seeds([{"label": "A", "test_top1": None}])


def test_training_curves_draw_a_chance_line_and_loss_curves_a_panel_per_setting():
    metrics = {"epoch": [0, 1], "train/loss_epoch": [2.0, 1.0], "val/loss": [2.1, 1.5],
               "train/top1": [0.2, 0.5], "val/top1": [0.2, 0.4]}
    figure = figures.plot_training_curves({"RedNet-26 seed 0": metrics}, chance=10.0)
    accuracy_axis = figure.axes[1]
    assert any(list(line.get_ydata()) == [10.0, 10.0] for line in accuracy_axis.get_lines())
    assert "chance" in [text.get_text() for text in accuracy_axis.texts]
    panels = figures.plot_loss_curves({"no weight decay": {"seed 0": metrics}, "weight decay": {"seed 0": metrics}})
    assert [axis.get_title() for axis in panels.axes] == ["no weight decay", "weight decay"]
    assert len(panels.axes[0].get_lines()) == 2  # training and validation loss


def test_relative_variation_ignores_the_kernels_size_and_is_zero_for_a_convolution():
    from involution.analysis import relative_variation
    torch.manual_seed(0)
    varied = torch.randn(2, 3, 5, 5, 6, 6)
    same_everywhere = torch.randn(2, 3, 5, 5, 1, 1).expand(2, 3, 5, 5, 6, 6)
    values = relative_variation({"varied": varied, "scaled": 10 * varied, "convolution": same_everywhere})
    assert values["varied"].shape == (2,)
    assert torch.allclose(values["varied"], values["scaled"])
    assert torch.all(values["varied"] > 0.5)
    assert torch.allclose(values["convolution"], torch.zeros(2), atol=1e-6)
