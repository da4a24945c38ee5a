"""The in-process chat harness of the verifiers adapter: one model call per segment, no subprocess.

Why not verifiers' own `null` harness: it runs a PEP 723 chat program that `uv` installs on first use
(`openai`, `mcp`, ... from the package index), so it needs `uv` and the network on every eval host.
Our policy is a plain chat model whose only "tool" is the environment, which the env's `run()` steps
host-side, so the harness only has to ask the model for one reply to the conversation so far.
verifiers allows exactly this (`Harness.launch`: "a harness may run its loop in-process ... as long
as every model call goes through `endpoint` + `secret`"): the call goes to the rollout's interception
server, which forwards it to the evaluated endpoint and records the turn (tokens, images included) on
the trace. The reply text reaches the env through that trace (`Segment.messages`), never from here.
"""

from __future__ import annotations

from typing import Any

try:
    import verifiers.v1 as vf
except ImportError as _error:  # the optional extra is missing
    raise ImportError("the verifiers adapter needs verifiers 0.4: pip install 'mmsearch-gym[verifiers]' "
                      f"({_error})") from None
import httpx
from pydantic import Field
from verifiers.v1.dialects.chat import message_to_wire
from verifiers.v1.runtimes import ProgramResult

__all__ = ["ChatHarness", "ChatHarnessConfig", "chat_request"]

ERROR_DETAIL_CHARS = 2000
"""How much of a failed interception reply the trace keeps (the real cause is recorded by the
interception server itself; this is only the harness's view)."""


class ChatHarnessConfig(vf.HarnessConfig):
    """Knobs of the one-call chat harness (`--env.agent.harness.*`)."""

    connect_timeout: float = Field(30.0, gt=0)
    """Seconds to reach the interception server (loopback: only a dead server takes long)."""


def chat_request(model: str, system_prompt: str | None, prompt: str | vf.Messages | None) -> dict[str, Any]:
    """The chat-completions body for one segment: the system prompt, then the conversation so far.

    Sampling settings are not set here: the interception server applies the run's (`--sampling.*`).
    """
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    if isinstance(prompt, str):
        messages.append({"role": "user", "content": prompt})
    elif prompt is not None:
        messages.extend(message_to_wire(message) for message in prompt)
    if not messages:
        raise ValueError("the chat harness got an empty conversation; the env opens every episode with a user turn")
    return {"model": model, "messages": messages}


class ChatHarness(vf.Harness[ChatHarnessConfig]):
    """Asks the model for one assistant turn per segment, in-process (see the module docstring)."""

    APPENDS_SYSTEM_PROMPT = True
    SUPPORTS_RESUME = True  # each segment is launched on the whole conversation (`Harness.resume`)
    EXECUTES_CODE = False  # the model gets no tools: the env is the only world it acts on
    NEEDS_CONTAINER = False  # nothing is installed or run in the runtime

    async def launch(self, ctx: Any, trace: Any, runtime: Any, endpoint: str, secret: str,
                     mcp_urls: dict[str, str], data: vf.TaskData, **_: Any) -> ProgramResult:
        if mcp_urls:
            raise ValueError(f"harness {self.config.id!r} cannot use tool servers, got {sorted(mcp_urls)}")
        system_prompt, prompt = self.resolve_prompt(data)
        body = chat_request(ctx.model, system_prompt, prompt)
        timeout = httpx.Timeout(None, connect=self.config.connect_timeout)
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            response = await client.post(f"{endpoint.rstrip('/')}/chat/completions", json=body,
                                         headers={"Authorization": f"Bearer {secret}"})
        if response.status_code != 200:
            detail = response.text[-ERROR_DETAIL_CHARS:]
            return ProgramResult(exit_code=1, stdout="", stderr=f"HTTP {response.status_code}: {detail}")
        return ProgramResult(exit_code=0, stdout="", stderr="")
