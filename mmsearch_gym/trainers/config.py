"""Training configurations: typed dataclasses loaded from YAML with clear errors.

Why strict loading: a misspelt key in a YAML file (`num_generation: 8`) would otherwise be ignored
silently and a run would train with the default. Every key is checked against the dataclass fields,
nested sections included, and errors name the file, the dotted key path and the accepted keys.
Values are type-checked (ints, floats, strings, booleans, optional values, nested sections).

Paths in a config are used as written (relative paths are relative to the working directory).
Pure Python plus PyYAML; no torch.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, Union

from mmsearch_gym.checks import require_int, require_number
from mmsearch_gym.envs.reward import RewardConfig
from mmsearch_gym.hf.generation import GenerationSettings

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message says where and why."""


# ------------------------------------------------------------------------------------------ sections

@dataclass
class SynthConfig:
    """Synthetic samples generated in-process (`mmsearch_gym.data.synth`): a world of `n_entities`
    fictional entities and `n_questions` questions about them from `split`."""

    seed: int = 0
    n_entities: int = 8
    n_questions: int = 32
    split: Literal["train", "test"] = "train"
    mix: dict[str, float] | None = None
    """Share of questions per need: {"none": .2, "image": .3, "image+text": .5} by default."""


RewardSettings = RewardConfig
"""The `env.reward` section is `envs.reward.RewardConfig` itself, loaded field by field:
no mirror to keep in sync. `penalty_warmup_steps` moves the search penalty from -p to +p over that many
trainer steps (the trainer tells the env its step). Old name, kept as an alias."""


@dataclass
class EnvConfig:
    """How to build the environment. `dataset`, `search` and `cache_path` are passed to `gym.make`
    as they are (null: gym.make's defaults, i.e. the bundled suite with strict replay search).

    With `synth` set, samples are generated in-process instead of `dataset`, and searches are answered
    by a `StaticSearchBackend` built from the same world unless `search` says otherwise."""

    dataset: str | None = None
    synth: SynthConfig | None = None
    search: str | None = None
    cache_path: str | None = None
    max_turns: int = 3
    image_search_limit: int = 1
    text_search_limit: int = 2
    top_k: int = 5
    prompt_style: Literal["mmsearch_r1", "direct_answer"] = "mmsearch_r1"
    reward: RewardConfig = field(default_factory=RewardConfig)


@dataclass
class TrainingCommon:
    """Fields shared by GRPO and SFT runs."""

    model: str = ""
    """A local model directory (config, weights, processor, chat template)."""
    output_dir: str = ""
    learning_rate: float = 1e-6
    max_steps: int = 100
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    save_steps: int = 50
    save_total_limit: int | None = 2
    logging_steps: int = 1
    seed: int = 0
    resume: Union[bool, Literal["auto"]] = "auto"
    """"auto": resume from the newest checkpoint in output_dir when there is one; true: require one;
    false: start from the model (refusing an output_dir that holds checkpoints)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool | None = None
    """None: bf16 on CUDA devices that support it, float32 otherwise."""
    gradient_checkpointing: bool = False
    metrics_file: str = "metrics.jsonl"
    """Per-step metrics, one JSON object per line, relative to output_dir."""
    trl: dict[str, Any] = field(default_factory=dict)
    """Extra TRL config fields (GRPOConfig / SFTConfig names), checked against TRL's dataclass."""


@dataclass
class GRPORunConfig(TrainingCommon):
    """`mmsearch-gym train grpo --config FILE.yaml`."""

    env: EnvConfig = field(default_factory=EnvConfig)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    """Rollout sampling (`hf.GenerationSettings`: the agent and the rollout share it). `max_new_tokens` is
    per assistant turn; a turn also ends at the first closing action tag. `temperature` is also the one
    TRL divides logits by in the loss."""
    num_generations: int = 4
    """Group size G: episodes per sample; advantages are normalised within each group."""
    beta: float = 0.0
    """KL coefficient against the initial model (0: no reference model)."""
    epsilon: float = 0.2
    num_iterations: int = 1
    scale_rewards: Literal["group", "batch", "none"] = "group"
    loss_type: str = "dapo"
    check_logprobs: bool = False
    """Recompute the policy's log-probs right after each rollout and compare with the sampled ones
    (costs one forward); logged as `sampling/logp_diff_max`."""
    logprob_tolerance: float = 1e-3
    """With check_logprobs, a larger difference fails the run (it means sampling and training disagree)."""


@dataclass
class SFTRunConfig(TrainingCommon):
    """`mmsearch-gym train sft --config FILE.yaml`: supervised fine-tuning on recorded trajectories."""

    env: EnvConfig = field(default_factory=EnvConfig)
    """The env the trajectories were recorded in: they are replayed in it to recover their images."""
    run_dirs: list[str] = field(default_factory=list)
    """Run directories holding episodes.jsonl (e.g. an oracle evaluation)."""
    min_reward: float | None = None
    """Keep only episodes with at least this reward (None: all without errors)."""
    num_train_epochs: float = 1.0
    learning_rate: float = 1e-5
    max_steps: int = -1


# ------------------------------------------------------------------------------------------- loading

def _type_name(kind: Any) -> str:
    if isinstance(kind, type):
        return kind.__name__
    return str(kind).replace("typing.", "")


def _is_union(kind: Any) -> bool:
    return typing.get_origin(kind) in (Union, types.UnionType)


def _convert(value: Any, kind: Any, where: str) -> Any:
    """`value` checked (and nested sections built) against the annotation `kind`."""
    if kind is Any:
        return value
    if _is_union(kind):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        candidates = [option for option in options if option is not type(None)]
        if len(candidates) == 1:  # Optional[X]: X's own error says more
            return _convert(value, candidates[0], where)
        for option in candidates:
            try:
                return _convert(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {_type_name(kind)}")
    origin = typing.get_origin(kind)
    if origin is Literal:
        allowed = typing.get_args(kind)
        if not any(value == option and type(value) is type(option) for option in allowed):
            raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _build(kind, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        (item,) = typing.get_args(kind)[:1] or (Any,)
        return [_convert(entry, item, f"{where}[{i}]") for i, entry in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        key_kind, value_kind = typing.get_args(kind) or (Any, Any)
        return {_convert(k, key_kind, f"{where}"): _convert(v, value_kind, f"{where}.{k}") for k, v in value.items()}
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {_type_name(kind)}")  # pragma: no cover


def _build(cls: type[T], data: Any, where: str) -> T:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'the file'}: expected a mapping of keys to values, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]  # cls is a dataclass
    unknown = [key for key in data if key not in names]
    if unknown:
        section = f"section {where!r}" if where else "the top level"
        raise ConfigError(f"unknown key(s) {[f'{where}.{k}' if where else k for k in unknown]} in {section}; "
                          f"known keys: {sorted(names)}")
    values = {key: _convert(value, hints[key], f"{where}.{key}" if where else key) for key, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or 'config'}: {error}") from error


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build config class `cls` from a plain mapping (as read from YAML), checking every key."""
    config = _build(cls, data, "")
    validate(config)
    return config


def load_config(path: str | Path, cls: type[T]) -> T:
    """Read a YAML file into `cls` (GRPORunConfig or SFTRunConfig); ConfigError names any problem."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{file}: not valid YAML: {error}") from error
    try:
        return from_dict(cls, data or {})
    except ConfigError as error:
        raise ConfigError(f"{file}: {error}") from error


def _positive(name: str, value: Any, low: float, allow_minus_one: bool = False) -> None:
    """`value` (already type-checked by the loader) is at least `low` (or -1 when allowed)."""
    try:
        if isinstance(value, int):
            require_int(name, value, low=int(low), allow=(-1,) if allow_minus_one else ())
        else:
            require_number(name, value, low=low)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def validate(config: Any) -> None:
    """Cross-field checks the type annotations cannot express."""
    if isinstance(config, TrainingCommon):
        if not config.model:
            raise ConfigError("model: a local model directory is required (e.g. one built by "
                              "`mmsearch-gym train build-tiny-model DIR`)")
        if not config.output_dir:
            raise ConfigError("output_dir: required (checkpoints and metrics go there)")
        _positive("learning_rate", config.learning_rate, 0.0)
        _positive("max_steps", config.max_steps, 1, allow_minus_one=isinstance(config, SFTRunConfig))
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps"):
            _positive(name, getattr(config, name), 1)
    env = getattr(config, "env", None)
    if isinstance(env, EnvConfig):
        if env.synth is not None and env.dataset is not None:
            raise ConfigError(f"env: set either dataset ({env.dataset!r}) or synth, not both")
        if env.synth is not None:
            _positive("env.synth.n_entities", env.synth.n_entities, 1)
            _positive("env.synth.n_questions", env.synth.n_questions, 1)
        if env.search is not None and env.search not in ("static", "replay", "replay_or_empty"):
            raise ConfigError(f"env.search must be 'static' (synth only), 'replay', 'replay_or_empty' or null, "
                              f"got {env.search!r}")
        if env.search == "static" and env.synth is None:
            raise ConfigError("env.search 'static' answers searches from the synthetic world: it needs env.synth")
    if isinstance(config, GRPORunConfig):
        _positive("num_generations", config.num_generations, 2)
        _positive("beta", config.beta, 0.0)
        if not config.generation.do_sample:  # the other generation fields check themselves
            raise ConfigError("generation.temperature must be > 0 for GRPO sampling, "
                              f"got {config.generation.temperature}")
    if isinstance(config, SFTRunConfig) and not config.run_dirs:
        raise ConfigError("run_dirs: at least one run directory with episodes.jsonl is required")


def to_plain(config: Any) -> dict[str, Any]:
    """The config as plain data (for manifests and logs)."""
    return dataclasses.asdict(config)
