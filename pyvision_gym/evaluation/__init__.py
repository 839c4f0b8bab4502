"""Evaluation: frozen suites, the runner, run folders, statistics, the leaderboard and the viewer.

One job per module:

- :mod:`.suites` frozen task lists with content hashes (``python -m pyvision_gym.evaluation.suites``);
- :mod:`.config` the typed suite configuration environments are made from;
- :mod:`.hashing` task content hashes; :mod:`.provenance` versions and git state;
- :mod:`.runner` ``run_eval``; :mod:`.worker` an agent on the rollout engine;
  :mod:`.fanout` in-process, worker processes or Ray; :mod:`.run_folder` the files of a run;
- :mod:`.statistics` summaries (Wilson intervals) and reading them back;
- :mod:`.leaderboard` (with :mod:`.board`, :mod:`.plots`) ranked tables
  (``python -m pyvision_gym.evaluation.leaderboard``);
- :mod:`.viewer` the static trajectory viewer (``python -m pyvision_gym.evaluation.viewer``);
  :mod:`.pages` the HTML templates both pages share.

The package imports none of its modules: import them by name (``from
pyvision_gym.evaluation.runner import run_eval``), so that ``python -m`` runs each command
module under one name only.
"""
