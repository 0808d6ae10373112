"""Running a detector: frame votes, pipelines, loading, result rows, Grad-CAM, and the demo's
analysis of an upload (media reading and face crops are :mod:`dldfd_hf.media`)."""
