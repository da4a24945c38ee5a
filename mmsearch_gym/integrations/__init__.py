"""Bridges from `ImageSearchVQA-v0` to other ecosystems: the env served over OpenEnv
(`integrations.openenv`) and an adapter for verifiers (`integrations.verifiers`). Each needs its own
extra; importing this package needs none."""
