"""Frame-level deepfake detection metrics as an ``evaluate`` module (loadable offline by path).

>>> import dldfd_hf.metrics
>>> metric = dldfd_hf.metrics.load("frame")
>>> metric.compute(predictions=[0.1, 0.8, 0.6, 0.3], references=[0, 1, 1, 0])["tcr"]
1.0

Inputs: ``predictions`` = P(fake) per frame, ``references`` = 0 (real) / 1 (fake).
Keyword ``threshold`` (default 0.5): a frame is called fake when P(fake) >= threshold.
Output: ``tcr`` (accuracy at the threshold, the paper's true classification rate),
``balanced_accuracy``, ``auc``, ``ap``, ``eer`` (fractions in [0, 1]; None where undefined, e.g.
AUC with one class), ``num_frames``, ``num_real``, ``num_fake``, ``threshold``.
The math lives in :mod:`dldfd_hf.metrics.core` (one import per line here: evaluate's import scanner).
"""

import datasets
import evaluate

from dldfd_hf.metrics.core import frame_metrics
from dldfd_hf.metrics.paper import CITATION


class DeepfakeFrameMetrics(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            module_type="metric",
            description=__doc__,
            citation=CITATION,
            inputs_description="predictions: P(fake) per frame (float); references: 0 = real, 1 = fake.",
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, threshold: float = 0.5):
        return frame_metrics(references, predictions, threshold=threshold)
