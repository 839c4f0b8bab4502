"""The OpenAI-compatible server behind ``pyvision-gym serve`` (entry points in
:mod:`pyvision_gym.agents.serve`):

- ``schema.py``: the strict request models (unknown fields are a 400 naming them) and their
  translation into chat messages and sampling settings;
- ``engine.py``: the job queue and the thread that batches jobs into the transformers
  backend, with cancellation;
- ``responses.py``: whole and streamed reply bodies, log-probs, streamed text deltas;
- ``app.py``: the FastAPI routes, API-key check, disconnect watching.
"""
