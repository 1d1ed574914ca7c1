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
alone says where to get them).

Only the RedNets are registered (with ``test_rednet``, the tiny one for
tests): timm has ResNets of its own under the same names, which differ from
this package's baselines. Importing this module is a separate step because
importing timm takes seconds that most uses of this package do not need.
"""
from __future__ import annotations

try:
    from timm.models import build_model_with_cfg, register_model
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
    """The record as timm's ``PretrainedCfg`` fields. ``url`` stays empty: the official
    RedNet files are behind a web page (``origin_url``), not a direct download."""
    cfg = {"first_conv": "stem.0.0", "classifier": "fc"}
    if info.weights is not None:
        weights = info.weights
        cfg.update(num_classes=weights.num_classes, input_size=weights.input_size,
                   mean=weights.mean, std=weights.std, interpolation=weights.interpolation,
                   crop_pct=weights.crop_pct, origin_url=weights.page)
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

        def build(in_chans: int = 3, **options):
            if in_chans != 3:
                raise ValueError(f"{name} takes RGB images (in_chans=3), got in_chans={in_chans}")
            # timm's num_classes=0 means "no classifier, return pooled features".
            num_classes = options.pop("num_classes", 1000)
            model = create_model(name, num_classes=num_classes or 1000, pretrained=weights,
                                 **options)
            if num_classes == 0:
                model.reset_classifier(0)
            return model

        # Our create_model loads (or explains) the official weights, so timm is told False.
        return build_model_with_cfg(build, name, pretrained=False, **kwargs)

    entry.__name__ = name
    entry.__qualname__ = name
    entry.__module__ = __name__
    entry.__doc__ = f"{model_info(name).label}, built by involution.models.create_model({name!r})."
    return entry


for _name in TIMM_MODELS:
    register_model(_entry_point(_name))
