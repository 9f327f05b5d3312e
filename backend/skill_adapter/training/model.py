"""Loading the base model and tokenizer, and wrapping the model with a LoRA adapter.

The same ``from_pretrained`` path serves the embedded tiny model and a hub model such as Qwen/Qwen3-8B.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from skill_adapter.core.base_models import portable_model_path
from skill_adapter.core.errors import TrainingError
from skill_adapter.core.model_modules import unknown_target_modules, unknown_targets_message
from skill_adapter.training.hardware import Hardware

log = logging.getLogger(__name__)


def load_tokenizer(model_name: str, *, trust_remote_code: bool = False) -> Any:
    tokenizer = AutoTokenizer.from_pretrained(model_name, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def quantization_config(config: dict[str, Any], hardware: Hardware) -> Any | None:
    """bitsandbytes settings for QLoRA: nf4 with double quantisation in 4-bit, or 8-bit."""
    if config["adapter_type"] != "qlora":
        return None
    from transformers import BitsAndBytesConfig

    if int(config["quant_bits"]) == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if hardware.bf16 else torch.float32,
    )


def load_base_model(
    config: dict[str, Any], hardware: Hardware, *, trust_remote_code: bool = False, for_training: bool = True
) -> PreTrainedModel:
    """The base model in the hardware's precision (or quantised for QLoRA), loaded from safetensors only.

    ``for_training=False`` (evaluation) skips ``prepare_model_for_kbit_training``, which only readies a
    quantised model for gradients."""
    quant = quantization_config(config, hardware)
    kwargs: dict[str, Any] = {
        "dtype": hardware.dtype,
        "attn_implementation": hardware.attn_implementation,
        "use_safetensors": True,
        "trust_remote_code": trust_remote_code,
    }
    if quant is not None:
        kwargs["quantization_config"] = quant
        if hardware.cuda:
            kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = AutoModelForCausalLM.from_pretrained(config["model"], **kwargs)
    if quant is not None and for_training:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=bool(config.get("gradient_checkpointing"))
        )
    return model


def lora_config(config: dict[str, Any]) -> LoraConfig:
    """LoRA over every linear projection unless target modules are configured."""
    return LoraConfig(
        r=int(config["lora_r"]),
        lora_alpha=float(config["lora_alpha"]),  # type: ignore[arg-type]  # peft takes floats too
        lora_dropout=float(config["lora_dropout"]),
        target_modules=config.get("target_modules") or "all-linear",
        task_type="CAUSAL_LM",
    )


def check_targets(model: PreTrainedModel, targets: Any) -> None:
    """The worker's half of the submission check (``service.check_target_modules``): the API reads module names
    from weights on its disk, so a hub model not downloaded yet (or a built-in before its conversion) passes
    there unchecked. Here the model is loaded: a ``target_modules`` entry it lacks fails the job before
    training, with the API's code and message (PEFT alone would train the entries that match and drop the
    others without a word, or fail with a bare ValueError when none does)."""
    if not isinstance(targets, list) or not targets:
        return
    modules = {
        name
        for name, module in model.named_modules()
        if isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() == 2
    }
    unknown = unknown_target_modules([str(t) for t in targets], modules)
    if unknown:
        raise TrainingError(unknown_targets_message(unknown, modules), code="invalid_parameter")


def attach_adapter(model: PreTrainedModel, config: dict[str, Any]) -> PeftModel:
    """Wrap ``model`` with a LoRA adapter: a fresh one, or the trainable copy of ``init_adapter_path``
    (further fine-tuning of an earlier job's result). Refuse a configuration that trains nothing."""
    if config.get("init_adapter_path"):
        log.info("continuing from the adapter in %s", config["init_adapter_path"])
        peft_model = PeftModel.from_pretrained(model, config["init_adapter_path"], is_trainable=True)
    else:
        check_targets(model, config.get("target_modules"))
        peft_model = get_peft_model(model, lora_config(config))
    # What adapter_config.json will record as the base: relative when it is a folder under the working
    # directory, so that the adapter and its base still match after the checkout moves.
    for adapter_config in peft_model.peft_config.values():
        if adapter_config.base_model_name_or_path:
            adapter_config.base_model_name_or_path = portable_model_path(adapter_config.base_model_name_or_path)
    trainable, total = peft_model.get_nb_trainable_parameters()
    if trainable == 0:
        raise TrainingError(
            "The LoRA target modules matched no layer of this model; set target modules that exist",
            code="no_trainable_parameters",
        )
    log.info("LoRA adapter: %d trainable of %d parameters (%.3f%%)", trainable, total, 100 * trainable / total)
    return peft_model  # type: ignore[return-value]
