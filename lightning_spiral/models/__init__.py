"""Model zoo of lightning-spiral: CIFAR ResNets, VGG-BN, MobileNetV2, a small digits CNN, torchvision models.

Build every model through :func:`build_model`, which attaches the :class:`ModelSpec` needed to
rebuild (and reload) it; :func:`register_model` adds your own builder under a name. A network of
your own class needs no registering to be saved: :func:`lightning_spiral.restore` rebuilds it.

Example:
    >>> from lightning_spiral.models import build_model, MODEL_NAMES
    >>> "resnet20" in MODEL_NAMES
    True
    >>> net = build_model("mobilenet_v2", num_classes=10, input_shape=(3, 32, 32), width_mult=0.5)
"""

from lightning_spiral.models.cifar_mobilenet_v2 import CifarMobileNetV2
from lightning_spiral.models.cifar_resnet import CifarResNet
from lightning_spiral.models.cifar_vgg import CifarVGG
from lightning_spiral.models.registry import MODEL_NAMES, build_model, register_model
from lightning_spiral.models.small_cnn import SmallCNN
from lightning_spiral.models.spec import ModelSpec, attach_spec, spec_of

__all__ = [
    "MODEL_NAMES",
    "CifarMobileNetV2",
    "CifarResNet",
    "CifarVGG",
    "ModelSpec",
    "SmallCNN",
    "attach_spec",
    "build_model",
    "register_model",
    "spec_of",
]
