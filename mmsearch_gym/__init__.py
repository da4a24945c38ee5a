"""mmsearch-gym: multimodal search-augmented VQA (MMSearch-R1's task) as a reproducible Gymnasium env.

`import mmsearch_gym` registers `ImageSearchVQA-v0`; `gym.make("mmsearch_gym:ImageSearchVQA-v0")`
imports this module first and so works in a fresh interpreter.
"""

from importlib.metadata import PackageNotFoundError, version

from mmsearch_gym.registration import ENV_ID, register_envs

try:
    __version__ = version("mmsearch-gym")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

register_envs()

__all__ = ["ENV_ID", "__version__"]
