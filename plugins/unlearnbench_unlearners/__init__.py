"""Built-in unlearner plugins."""

from unlearnbench.api import hookimpl
from unlearnbench_unlearners.amnesiac import Amnesiac
from unlearnbench_unlearners.bad_teacher import BadTeacher
from unlearnbench_unlearners.boundary import BoundaryExpanding, BoundaryShrink
from unlearnbench_unlearners.finetune import FineTune, L1Sparse
from unlearnbench_unlearners.fisher import FisherForgetting
from unlearnbench_unlearners.gradient_ascent import GradientAscent
from unlearnbench_unlearners.influence import InfluenceUnlearning
from unlearnbench_unlearners.jit import JiT
from unlearnbench_unlearners.last_layers import CatastrophicForgettingK, ExactUnlearningK
from unlearnbench_unlearners.neggrad import NegGradPlus
from unlearnbench_unlearners.noop import NoOp
from unlearnbench_unlearners.random_label import RandomLabel
from unlearnbench_unlearners.retrain import Retrain
from unlearnbench_unlearners.salun import SalUn
from unlearnbench_unlearners.scar import Scar
from unlearnbench_unlearners.scrub import Scrub
from unlearnbench_unlearners.ssd import AdaptiveSSD, LossFreeSSD, SelectiveSynapticDampening
from unlearnbench_unlearners.unsir import Unsir


@hookimpl
def unlearnbench_register_unlearners() -> list[type]:
    return [
        Retrain,
        FineTune,
        GradientAscent,
        L1Sparse,
        RandomLabel,
        FisherForgetting,
        InfluenceUnlearning,
        SalUn,
        BoundaryShrink,
        BoundaryExpanding,
        Scrub,
        NegGradPlus,
        SelectiveSynapticDampening,
        LossFreeSSD,
        AdaptiveSSD,
        BadTeacher,
        Unsir,
        JiT,
        Scar,
        CatastrophicForgettingK,
        ExactUnlearningK,
        Amnesiac,
        NoOp,
    ]
