"""Publishing: export a model folder with its card (:mod:`.export`), render model and dataset cards
(:mod:`.cards`, :mod:`.shipped_card`), push models, corpora and the demo Space to the Hugging Face
Hub (:mod:`.push`).

The model folder format itself (config.json, shims, weights) is :mod:`dldfd_hf.model_folder`.
"""
