"""torch.hub entry points, one per model of :func:`involution.models.list_models`.

    torch.hub.load("<owner>/involution", "rednet26", num_classes=257)
    torch.hub.load("<owner>/involution", "rednet50", pretrained="rednet50.pth")
    torch.hub.load("<owner>/involution", "resnet50", pretrained=True)  # downloads, hash-checked

Each entry takes the arguments of :func:`involution.models.create_model`;
``pretrained=True`` downloads the official weights where a direct download
exists and otherwise says where to get them.
"""
from involution.models import create_model as _create_model
from involution.models import list_models as _list_models

dependencies = ["torch", "torchvision"]


def _hub_entry(name: str):
    def entry(**kwargs):
        return _create_model(name, **kwargs)
    entry.__name__ = name
    entry.__doc__ = (f"{name}, built by involution.models.create_model({name!r}, **kwargs), "
                     "e.g. num_classes=257, or pretrained=PATH to an official checkpoint "
                     "(pretrained=True says where to get it).")
    return entry


# torch.hub lists a hubconf's public callables as its entry points.
globals().update({_name: _hub_entry(_name) for _name in _list_models()})
