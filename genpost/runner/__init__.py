"""Running the plugins on frames, the same way for every command.

- ``session``: the decode session: given an input (and its sidecar), which post-processors run on which
  frames, with which options and payloads (every restoring route asks it, so they cannot disagree).
- ``declared``: the chain a stream declares (H.274 NNPFC/NNPFA, the ``genpost/chain`` record): what
  ``--carriage nnpfc`` writes and what ``enhance`` runs when no plugin is named.
- ``loop``: the per-frame loops: ``FrameRestorer`` (decode side) and ``FrameAnalyzer`` (encode side),
  one error budget, chain loading and side-info collection.
- ``periods``: adaptation periods at the encoder (keyframe to keyframe), the first pass that lets plugins
  tune their weights on the content.
"""
