"""The jobs: what each command computes from files to files, and how it runs.

What they compute:

- ``encode``: source -> x265 base -> local decode -> each plugin's ``analyze`` -> mux with side info;
  ``encode_base``: the same side info for a base someone else encoded (``encode --base``).
- ``enhance``: decode -> restore -> encode -> re-mux with the input's other streams; ``inspect``.
- ``pipe``: y4m in, restored y4m out, between two ffmpeg commands; ``chain``: chain presets and the FFmpeg
  route (``--chain``, ``--vf-pre``/``--vf-post``).
- ``outputs``: where outputs go (path checks first, atomic writes, sidecar names, provenance).

How they run:

- ``schedule``: ``Schedule``: one pass, resumable chunks (``resume``) or Ray workers (``distributed``).
- ``batch``: a manifest of encode/enhance jobs over the workers, with a resumable report.

``pipeline`` gathers the names callers use most (``encode``, ``enhance``, ``inspect``, ...) in one place.
"""
