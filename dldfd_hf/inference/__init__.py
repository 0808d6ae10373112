"""Running a detector: media and video reading, face crops, frame votes, pipelines, loading, result
rows and Grad-CAM."""
