"""🤗 transformers plumbing shared by the model agents and the trainers (a ground-level room: `hf` imports
only `checks`, `imaging`, `net` and `runs` of this package).

- `model_files`: the local model folder and the fingerprint of its weights;
- `processor`: loading the processor (without torchvision's video processor), the chat template,
  the vision special-token ids;
- `messages`: observations as HF chat messages plus images in placeholder order (the part converter
  the OpenAI format is built on too);
- `stopping`: stop strings, the stopping criterion and where a generated row really ended;
- `generation`: `GenerationSettings`, the `GenerationConfig` built from them (eos/pad ids), the
  token-suppression logits processor.

Why here and not in `agents`: the transformers agent and the rollout collector must generate a turn
identically (same eos ids, same stop token, same suppressed tokens), and the trainers may not import
`agents`. Nothing here imports torch or transformers at import time, nor anything of ours above the
ground layer: stop strings and sample formats are passed in by the caller.
"""

from mmsearch_gym.hf.generation import (
    GenerationSettings,
    SpecialIds,
    build_generation_config,
    special_ids,
    suppress_tokens_processor,
    using_generation_config,
)
from mmsearch_gym.hf.messages import to_hf_messages, to_pil
from mmsearch_gym.hf.model_files import local_model_dir, sha256_text, weights_fingerprint
from mmsearch_gym.hf.processor import (
    VISION_SPECIAL_TOKENS,
    chat_template_of,
    load_processor,
    vision_token_ids,
    without_video_processor,
)
from mmsearch_gym.hf.stopping import StopChecker, check_stop_strings, stop_criteria, stop_position, truncate_at_stop

__all__ = [
    "VISION_SPECIAL_TOKENS", "GenerationSettings", "SpecialIds", "StopChecker", "build_generation_config",
    "chat_template_of", "check_stop_strings", "load_processor", "local_model_dir", "sha256_text", "special_ids",
    "stop_criteria", "stop_position", "suppress_tokens_processor", "to_hf_messages", "to_pil", "truncate_at_stop",
    "using_generation_config", "vision_token_ids", "weights_fingerprint", "without_video_processor",
]
