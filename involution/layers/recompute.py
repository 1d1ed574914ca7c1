"""Recomputation in backward: keep less for the backward pass and compute it again there.

A model option (``recompute=True``) trades time for memory: a module's
intermediate tensors are not kept for backward but recomputed from its input,
with exactly the gradients and running statistics of the plain call.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint, noop_context_fn

__all__ = ["recompute_in_backward", "recomputing"]


def _fx_tracing() -> bool:
    fx = torch.fx._symbolic_trace
    return getattr(fx, "is_fx_symbolic_tracing", fx.is_fx_tracing)()


def _tracing() -> bool:
    """Whether a tracer or compiler, not eager PyTorch, runs the forward: they record the
    plain forward (torch.compile's partitioner makes its own saving decisions)."""
    return (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()
            or _fx_tracing() or torch.onnx.is_in_onnx_export())


def recomputing(module: nn.Module) -> bool:
    """Whether ``module``'s forward should recompute its intermediates in backward now:
    asked for (``module.recompute``), training, with autograd on, in eager mode."""
    return (getattr(module, "recompute", False) and module.training and torch.is_grad_enabled()
            and not _tracing())


_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


@contextlib.contextmanager
def _running_stats_swapped(norms: list[nn.Module], spares: list[dict]):
    # The batch norms normalise with the batch's own statistics, exactly as in the first
    # run, and update the spare copies of their running statistics, thrown away after.
    kept = [{name: getattr(norm, name) for name in spare} for norm, spare in zip(norms, spares)]
    for norm, spare in zip(norms, spares):
        for name, buffer in spare.items():
            setattr(norm, name, buffer)
    try:
        yield
    finally:
        for norm, buffers in zip(norms, kept):
            for name, buffer in buffers.items():
                setattr(norm, name, buffer)


def _keeping(ops: frozenset):
    """A selective-checkpoint policy: the outputs of ``ops`` are kept, the rest recomputed."""
    from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

    def policy(ctx, op, *args, **kwargs):
        return CheckpointPolicy.MUST_SAVE if op in ops else CheckpointPolicy.PREFER_RECOMPUTE
    return create_selective_checkpoint_contexts(policy)


def recompute_in_backward(module: nn.Module, *inputs: torch.Tensor, forward=None,
                          keep: tuple = ()) -> torch.Tensor:
    """``module(*inputs)`` (or ``forward(*inputs)``, a function of ``module``), keeping
    none of its intermediate tensors for backward: backward runs it a second time to get
    them back (non-reentrant ``torch.utils.checkpoint``), so the gradients are exactly
    those of the plain call.

    The batch norms inside ``module`` update their running statistics in the first run
    only: the second one normalises with the same batch statistics and leaves the
    buffers alone, so a step with recomputation changes the model exactly as one without.

    ``keep``: operators (``torch.ops`` overloads) whose outputs are kept from the first
    run rather than computed again: those that are expensive to run, or whose outputs
    the code after ``module`` keeps for its own backward anyway.
    """
    function = module if forward is None else forward
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.training and m.track_running_stats]
    # Made here, outside the checkpoint: a copy made while recomputing would be an
    # operation the first run did not have.
    spares = [{name: getattr(norm, name).clone() for name in _RUNNING_STATS
               if getattr(norm, name) is not None} for norm in norms]
    runs = 0

    def run(*args):
        nonlocal runs
        runs += 1
        if runs == 1:
            return function(*args)
        with _running_stats_swapped(norms, spares):
            return function(*args)

    ops = frozenset(keep)
    context_fn = (lambda: _keeping(ops)) if ops else noop_context_fn
    return checkpoint(run, *inputs, use_reentrant=False, context_fn=context_fn)
