"""Image task families, one file each (imported as ``pyvision_gym.envs.image``).

Each family file holds one :class:`~pyvision_gym.envs.base.TaskFamily` subclass whose
docstring is its spec sheet; ``drawing.py`` holds the drawing helpers and the colour table,
``layout.py`` the canvas and placement helpers several families share, and ``experts/`` the
expert programs (real Python files run inside the runtime). Families are registered by
``"module:Class"`` strings in ``envs/registry.py``.
"""
