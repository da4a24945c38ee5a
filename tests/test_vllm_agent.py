"""VLLMAgent: import-safe without vLLM; its prompt/multimodal/sampling wiring checked against a
recording stand-in for `vllm`; a real run on a tiny Qwen2.5-VL where vLLM and a GPU exist."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.envs.image_search_vqa import ImageSearchVQAEnv
from mmsearch_gym.search.static import StaticSearchBackend
from mmsearch_gym.search.types import EncodedImage, SearchItem, SearchResults


def _has_real_vllm() -> bool:
    try:
        return importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):
        return False


def test_module_imports_without_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError
    module = importlib.import_module("mmsearch_gym.agents.vllm")
    with pytest.raises(ImportError, match=r"VLLMAgent needs vLLM.*mmsearch-gym\[vllm\]"):
        module.VLLMAgent("/nonexistent")


def _observations() -> list[dict]:
    rng = np.random.default_rng(0)
    sample = VQASample(id="s", image=rng.integers(0, 256, (40, 56, 3), dtype=np.uint8), question="Who?",
                       answers=("A",))
    thumbnails = SearchResults("image", tuple(
        SearchItem(title=f"t{i}", url=f"http://e.test/{i}",
                   thumbnail=EncodedImage.from_array(rng.integers(0, 256, (30, 30 + 4 * i, 3), dtype=np.uint8)))
        for i in range(2)))
    env = ImageSearchVQAEnv(dataset=[sample], search=StaticSearchBackend(default_image=thumbnails))
    first, _ = env.reset(options={"index": 0})
    second, *_ = env.step("<reason>r</reason><search><img></search>")
    return [first, second]


class _FakeVLLM:
    """A stand-in `vllm` module recording what the agent gives the engine."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.llm_args: dict[str, Any] = {}
        self.calls: list[tuple[list[dict], Any, dict]] = []
        fake = self

        class SamplingParams:
            def __init__(self, temperature: float = 1.0, top_p: float = 1.0, top_k: int = -1, max_tokens: int = 16,
                         seed: int | None = None, stop: list[str] | None = None,
                         include_stop_str_in_output: bool = False, skip_special_tokens: bool = True,
                         bad_words: list[str] | None = None) -> None:
                self.__dict__.update(locals())
                del self.__dict__["self"]

        class LLM:
            def __init__(self, **kwargs: Any) -> None:
                fake.llm_args = kwargs

            def generate(self, requests, sampling_params, **kwargs):
                fake.calls.append((requests, sampling_params, kwargs))
                return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=fake.replies[i % len(fake.replies)])])
                        for i in range(len(requests))]

        self.module = types.ModuleType("vllm")
        self.module.LLM, self.module.SamplingParams, self.module.__version__ = LLM, SamplingParams, "0.0-fake"


def test_engine_inputs_and_sampling(tiny_qwen: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeVLLM(["<reason>r</reason><answer>A</answer>", "<search><img></search>"])
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    from mmsearch_gym.agents.vllm import VLLMAgent

    agent = VLLMAgent(tiny_qwen, max_new_tokens=33, seed=7, max_model_len=2048, llm_kwargs={"enforce_eager": True})
    assert fake.llm_args["model"] == str(tiny_qwen.resolve()) and fake.llm_args["seed"] == 7
    assert fake.llm_args["limit_mm_per_prompt"] == {"image": 16} and fake.llm_args["enforce_eager"] is True
    observations = _observations()
    actions = agent.act_batch(observations, [{}, {}])
    assert actions == ["<reason>r</reason><answer>A</answer>", "<search><img></search>"]
    assert len(fake.calls) == 1  # one engine call for the whole batch
    requests, params, kwargs = fake.calls[0]
    assert kwargs == {"use_tqdm": False}
    for request, obs in zip(requests, observations):
        images = request["multi_modal_data"]["image"]
        assert len(images) == len(obs["images"])
        assert all(np.array_equal(np.asarray(image), pixels) for image, pixels in zip(images, obs["images"]))
        # one unexpanded placeholder per image: vLLM expands them itself
        assert request["prompt"].count("<|image_pad|>") == len(images)
        assert request["prompt"].endswith("<|im_start|>assistant\n")
    assert params.stop == ["</answer>", "</search>", "</text_search>"] and params.include_stop_str_in_output
    assert params.temperature == 0.0 and params.max_tokens == 33 and params.seed == 7
    assert "<|video_pad|>" in params.bad_words and "<|image_pad|>" in params.bad_words
    card = agent.card()
    assert card["backend"] == "vllm" and card["weights"]["method"] == "sha256"
    assert card["generation"]["max_tokens"] == 33 and card["versions"] == {"vllm": "0.0-fake"}
    assert card["engine"]["max_model_len"] == 2048 and "model" not in card["engine"]


def test_text_after_the_stop_is_cut(tiny_qwen: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeVLLM(["<answer>A</answer>\nand then"])
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    from mmsearch_gym.agents.vllm import VLLMAgent

    agent = VLLMAgent(tiny_qwen)
    assert agent.act(_observations()[0]) == "<answer>A</answer>"
    with pytest.raises(ValueError, match="top_p"):
        VLLMAgent(tiny_qwen, top_p=2)
    with pytest.raises(ValueError, match="max_images_per_prompt"):
        VLLMAgent(tiny_qwen, max_images_per_prompt=0)


@pytest.mark.skipif(not _has_real_vllm(), reason="vLLM is not installed (GPU-only extra 'vllm')")
def test_real_vllm_on_gpu(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU")
    from tiny_models import build_tiny_qwen2_5_vl

    from mmsearch_gym.agents.vllm import VLLMAgent

    model = build_tiny_qwen2_5_vl(tmp_path / "qwen", hidden_size=256, vision_hidden_size=128)
    agent = VLLMAgent(model, max_new_tokens=16, max_model_len=2048, gpu_memory_utilization=0.3,
                      llm_kwargs={"enforce_eager": True})
    observations = _observations()
    batched = agent.act_batch(observations, [{}, {}])
    assert batched == [agent.act(obs) for obs in observations]


def test_agent_modules_import_without_ml_stack() -> None:
    """Importing any agent module pulls in neither vLLM, torch nor transformers (they load on use)."""
    import subprocess

    code = ("import sys; sys.modules['vllm'] = None\n"
            "import mmsearch_gym.agents.messages, mmsearch_gym.agents.stopping, mmsearch_gym.agents.openai_compat\n"
            "import mmsearch_gym.agents.hf, mmsearch_gym.agents.vllm\n"
            "loaded = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
