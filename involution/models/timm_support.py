"""The RedNets as timm models.

``import involution.models.timm_support`` registers every RedNet with timm, after
which timm's own tools work on them::

    import timm
    import involution.models.timm_support  # noqa: F401  (registers the RedNets)
    model = timm.create_model("rednet26", num_classes=257)
    backbone = timm.create_model("rednet26", features_only=True, out_indices=(1, 2, 3, 4))
    official = timm.create_model("rednet26", pretrained=True,
                                 pretrained_cfg_overlay={"file": "rednet26.pth"})

(the official RedNet checkpoints have no direct download: ``pretrained=True``
alone says where to get them). timm's model conventions (``num_classes=0``,
``global_pool=""``, ``in_chans``, ``device``, ``dtype``, ``reset_classifier``,
``forward_intermediates``, ``set_grad_checkpointing``, ``group_matcher``) are the
models' own: this module only registers them (see docs/timm.md).

Only the RedNets are registered (with ``test_rednet``, the tiny one for
tests): timm has ResNets of its own under the same names, which differ from
this package's baselines. Importing this module is a separate step because
importing timm takes seconds that most uses of this package do not need.
"""
from __future__ import annotations

from dataclasses import fields

try:
    from timm.models import PretrainedCfg, build_model_with_cfg, register_model
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("involution.models.timm_support needs timm: pip install timm "
                      "(or pip install 'involution[test]')") from error

from involution.models import create_model
from involution.models.registry import ModelInfo, list_models, model_info

__all__ = ["TIMM_MODELS"]


def _is_rednet(name: str) -> bool:
    return model_info(name).family == "rednet"


# The names registered with timm.
TIMM_MODELS = [name for name in list_models() if _is_rednet(name)]


def _pretrained_cfg(info: ModelInfo) -> dict:
    """The record's fields that timm's ``PretrainedCfg`` has. ``url`` stays empty: the
    official RedNet files are behind a web page (``origin_url``), not a direct download."""
    timm_fields = {field.name for field in fields(PretrainedCfg)}
    cfg = {key: value for key, value in info.pretrained_cfg().items() if key in timm_fields}
    if info.weights is not None:
        cfg["origin_url"] = info.weights.page
    if info.reported is not None:
        cfg["notes"] = (f"{info.reported.citation}: top-1 {info.reported.top1}%, "
                        f"top-5 {info.reported.top5}%",)
    return cfg


# timm's register_model reads the pretrained cfgs from this module-level dict.
default_cfgs = {name: _pretrained_cfg(model_info(name)) for name in TIMM_MODELS}


def _entry_point(name: str):
    def entry(pretrained: bool = False, **kwargs):
        # timm's way to name a local weights file: pretrained_cfg_overlay={"file": PATH}.
        local_file = (kwargs.get("pretrained_cfg_overlay") or {}).get("file")
        weights = (local_file or True) if pretrained else None

        def build(**options):
            return create_model(name, pretrained=weights, **options)

        # Our create_model loads (or explains) the official weights, so timm is told False.
        return build_model_with_cfg(build, name, pretrained=False, **kwargs)

    entry.__name__ = name
    entry.__qualname__ = name
    entry.__module__ = __name__
    entry.__doc__ = f"{model_info(name).label}, built by involution.models.create_model({name!r})."
    return entry


for _name in TIMM_MODELS:
    register_model(_entry_point(_name))
