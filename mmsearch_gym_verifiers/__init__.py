"""The verifiers plugin name for `ImageSearchVQA-v0` (`vf-eval mmsearch-gym-verifiers ...`).

verifiers finds environments by a top-level module name, and its env servers look that name up again in
worker processes, so the adapter (`mmsearch_gym.integrations.verifiers`) is re-exported here.
"""

from mmsearch_gym.integrations.verifiers import *  # noqa: F403
from mmsearch_gym.integrations.verifiers import __all__  # noqa: F401
