"""Video-level deepfake detection metrics as an ``evaluate`` module (loadable offline by path).

>>> import dldfd_hf.metrics
>>> metric = dldfd_hf.metrics.load("video")
>>> result = metric.compute(
...     predictions=[0.9, 0.7, 0.2, 0.1, 0.4],
...     references=[1, 1, 0, 0, 1],
...     methods=["Deepfakes", "Deepfakes", "original", "original", "FaceSwap"],
...     video_ids=["000_003", "000_003", "000", "000", "000_003"],
... )
>>> result["video"]["num_videos"]   # the two "000_003" videos are different videos
3

Inputs, one per frame: ``predictions`` = P(fake), ``references`` = 0 (real) / 1 (fake),
``methods`` (manipulation name, ``original`` for real videos) and ``video_ids``. Frames are grouped
into videos by (method, video_id) -- never by video_id alone.
Keywords: ``strategy`` ("majority", the paper's vote, "mean" or "max_mean") and ``threshold`` (0.5):
the :class:`~dldfd_hf.inference.voting.VotingRule`.
Output: ``{"frame": {...}, "video": {...}, "per_method": {method: {...}}}`` as computed by
:func:`dldfd_hf.metrics.core.deepfake_metrics`; video ``tcr`` / ``balanced_accuracy`` come from the
votes, video ``auc`` from each video's mean P(fake).
"""

import datasets
import evaluate

from dldfd_hf.inference.voting import VotingRule
from dldfd_hf.metrics.core import deepfake_metrics
from dldfd_hf.metrics.paper import CITATION


class DeepfakeVideoMetrics(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            module_type="metric",
            description=__doc__,
            citation=CITATION,
            inputs_description=(
                "predictions: P(fake) per frame; references: 0 = real, 1 = fake; "
                "methods: manipulation method per frame; video_ids: video id per frame."
            ),
            features=datasets.Features(
                {
                    "predictions": datasets.Value("float64"),
                    "references": datasets.Value("int64"),
                    "methods": datasets.Value("string"),
                    "video_ids": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions, references, methods, video_ids, strategy: str = VotingRule.strategy,
                 threshold: float = VotingRule.threshold):
        return deepfake_metrics(references, predictions, methods, video_ids, VotingRule(strategy, threshold))
