"""Built-in model plugins."""

from unlearnbench.api import hookimpl
from unlearnbench_models.airbench import Airbench
from unlearnbench_models.resnet import ResNet18, ResNet18Tiny, ResNet50
from unlearnbench_models.small_cnn import SmallCNN
from unlearnbench_models.vgg import VGG16BN


@hookimpl
def unlearnbench_register_models() -> list[type]:
    return [SmallCNN, ResNet18, ResNet50, VGG16BN, ResNet18Tiny, Airbench]
