"""Looking inside a model: what it costs, and which kernels it generates.

``complexity`` counts parameters and multiply-adds (involution included);
``kernels`` captures the kernels each involution layer generates during a
forward pass and summarises them per pixel.
"""
from involution.analysis.complexity import (
    Complexity,
    complexity_table,
    count_complexity,
    count_parameters,
    format_complexity_table,
    format_operator_costs,
    operator_costs,
)
from involution.analysis.kernels import (
    KERNEL_SUMMARIES,
    capture_kernels,
    involution_layers,
    kernel_summary,
    relative_variation,
    summary_at_pixels,
)

__all__ = ["Complexity", "count_parameters", "count_complexity", "complexity_table", "format_complexity_table",
           "operator_costs", "format_operator_costs", "capture_kernels", "involution_layers", "kernel_summary",
           "summary_at_pixels", "relative_variation", "KERNEL_SUMMARIES"]
