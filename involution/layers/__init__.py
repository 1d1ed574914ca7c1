"""Layers: the involution layer with its kernel generator, and recomputation in backward."""
from involution.layers.involution import Involution2d, KernelGenerator
from involution.layers.recompute import recompute_in_backward, recomputing

__all__ = ["Involution2d", "KernelGenerator", "recompute_in_backward", "recomputing"]
