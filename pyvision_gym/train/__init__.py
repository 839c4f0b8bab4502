"""The RL trainer: multi-turn VLM rollouts token-in-token-out, pluggable algorithms, the
accumulative tool reward and oversampling-filtering-ranking (``pyvision-gym train``).

Read in this order: ``config.py`` (every setting), ``trajectory.py`` (what a rollout yields),
``rollout.py`` (token-in-token-out episodes), ``batching.py`` (oversample, filter, rank),
``algorithms/`` (advantages and policy losses), ``learner.py`` (the update), ``trainer.py``
(the loop). The model family's specifics (chat template, image tokens) come from a
:class:`~pyvision_gym.train.codec.ChatCodec` named in the config, so this package is
model-agnostic and imports nothing from ``pyvision_gym.agents``.
"""
