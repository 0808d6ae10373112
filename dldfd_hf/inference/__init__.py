"""Running a detector: media and video reading, face crops, frame votes, pipelines, loading, result
rows, Grad-CAM, and the demo's analysis of an upload."""
