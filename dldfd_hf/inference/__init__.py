"""Running a detector: frame votes, pipelines, loading, result rows and Grad-CAM (media reading and
face crops are :mod:`dldfd_hf.media`; the demo's analysis of an upload lives in ``demo/analysis.py``)."""
