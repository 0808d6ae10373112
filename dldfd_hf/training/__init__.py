"""Reusable pieces of ``examples/train.py`` and ``examples/evaluate.py``.

- :mod:`.config`: the training configuration (YAML + ``--key value`` overrides, validated early);
- :mod:`.data`: corpus loading, on-the-fly decoding/augmentation, the reproducible epoch sampler;
- :mod:`.modeling`: the model to train, and model resolution for evaluation;
- :mod:`.checkpoint`: training state and checkpoints that resume exactly;
- :mod:`.evaluation`: distributed prediction and the deepfake metrics of a split.
- :mod:`.loop`: the training loop (an epoch, validation, the final test, ``results.json``).

Import the submodules you need; this package imports nothing heavy by itself.
"""
