"""ganscope: train, inspect and explain GANs on Fashion-MNIST-scale images.

The Python API that the CLI (and later the web page) wraps::

    import ganscope
    run = ganscope.train(ganscope.RunConfig(), "runs/mlp")
    G = ganscope.load_run("runs/mlp").generator()   # a plain nn.Module, no trainer needed
    ganscope.analyze(run)                            # what every latent dimension does
    table = ganscope.compare_methods(run)["rows"]    # which direction makes a sneaker
    mine = ganscope.import_generator(["G.onnx"], out="runs/mine")  # a generator from elsewhere
"""

__version__ = "0.1.0"

from .analysis import analyze_run as analyze
from .analysis import compare_methods
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import GanscopeError, TrainingDiverged
from .importer import import_generator
from .runs import Run, load_run
from .trainer import resume, train

__all__ = [
    "__version__",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "GanscopeError",
    "TrainingDiverged",
    "Run",
    "load_run",
    "train",
    "resume",
    "analyze",
    "compare_methods",
    "import_generator",
]
