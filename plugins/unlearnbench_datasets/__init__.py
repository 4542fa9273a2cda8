"""Built-in dataset plugins."""

from unlearnbench.api import hookimpl
from unlearnbench_datasets.cifar import CIFAR10, CIFAR100
from unlearnbench_datasets.digits import Digits
from unlearnbench_datasets.imagefolder import ImageFolder
from unlearnbench_datasets.svhn import SVHN
from unlearnbench_datasets.tinyimagenet import TinyImageNet


@hookimpl
def unlearnbench_register_datasets() -> list[type]:
    return [Digits, CIFAR10, CIFAR100, SVHN, TinyImageNet, ImageFolder]
