"""Registers the environment ids with Gymnasium (idempotent, safe to import many times).

`gym.make("ImageSearchVQA-v0", **kwargs)` builds the local env; with `server="ws://host:port"` it builds
`RemoteImageSearchVQAEnv`, which plays the same env on a `mmsearch-gym serve` server and returns the
same observations, rewards and info. One id for both, so research code swaps a local env for a remote
one by adding one argument (vector envs and the evaluation runner included).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

ENV_ID = "ImageSearchVQA-v0"
ENTRY_POINT = "mmsearch_gym.registration:make_image_search_vqa"


class _ImageSearchVQAFactory:
    """The registered entry point: the local env, or the remote one when `server=` is given. Imports
    happen on call, so `import mmsearch_gym` stays light and the `serve` extra is needed only for
    `server=`."""

    @property
    def metadata(self) -> dict[str, Any]:
        from mmsearch_gym.envs.image_search_vqa import ImageSearchVQAEnv

        return ImageSearchVQAEnv.metadata

    def __call__(self, server: str | None = None, **kwargs: Any) -> gym.Env:
        if server is None:
            from mmsearch_gym.envs.image_search_vqa import ImageSearchVQAEnv

            return ImageSearchVQAEnv(**kwargs)
        settings = sorted(key for key, value in kwargs.items() if value is not None)
        if settings:
            raise ValueError(f"with server={server!r} the server's settings apply; drop {settings} "
                             "(set them with `mmsearch-gym serve --env KEY=VALUE`)")
        try:
            from mmsearch_gym.integrations.openenv.client import RemoteImageSearchVQAEnv
        except ImportError as error:
            raise ImportError(f"server= needs the `serve` extra (pip install 'mmsearch-gym[serve]'): {error}") from None
        return RemoteImageSearchVQAEnv(server)


make_image_search_vqa = _ImageSearchVQAFactory()


def register_envs() -> None:
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=ENTRY_POINT, nondeterministic=False)
