"""Agents: the `Agent` protocol, scripted baselines, and model agents (transformers, vLLM, OpenAI-compatible)."""

from mmsearch_gym.agents.base import Agent, AgentBase, AgentBatchError, AgentError, Observation

__all__ = ["Agent", "AgentBase", "AgentBatchError", "AgentError", "Observation"]
