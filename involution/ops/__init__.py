"""The involution operator: one function, :func:`involution2d`, and the backends behind it.

``geometry`` checks the arguments and derives the sizes; ``functional`` is the
front that chooses an implementation; ``custom_op`` turns each fast backend
(``loop``, ``cpu`` with its C++ source in ``csrc/``, ``triton_kernels``) into a
``torch.library`` custom op with a fake implementation, a registered gradient
and a FLOP formula. Importing this package registers those ops, which loading
a saved export or trace needs.
"""
from involution.ops.functional import (
    IMPLEMENTATIONS,
    default_impl,
    involution2d,
    mixed_precision,
    mixed_precision_dtype,
)
from involution.ops.geometry import InvolutionGeometry, check_geometry, is_positive_int

__all__ = ["involution2d", "IMPLEMENTATIONS", "default_impl", "mixed_precision", "mixed_precision_dtype",
           "InvolutionGeometry", "check_geometry", "is_positive_int"]
