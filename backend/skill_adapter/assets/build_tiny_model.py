"""Build the embedded tiny Qwen3 model and its tokenizer, offline and deterministically.

    uv run python -m skill_adapter.assets.build_tiny_model [--out DIR]

The tokenizer is a byte-level BPE (any UTF-8 text encodes; nothing is ever unknown) trained on a corpus
this script generates from its own word lists with a fixed seed. The model is ``Qwen3ForCausalLM`` with
the shapes below and weights from ``torch.manual_seed(SEED)``. Both load with ``AutoTokenizer`` /
``AutoModelForCausalLM.from_pretrained`` exactly like a hub model.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

SEED = 1234
VOCAB_SIZE = 2048
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

# ChatML, as Qwen models use it. The `{% generation %}` markers let TRL compute assistant-only masks.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{- message['content'] + '<|im_end|>' -}}{% endgeneration %}"
    "{%- else -%}"
    "{{- message['content'] + '<|im_end|>' -}}"
    "{%- endif -%}"
    "{{- '\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

MODEL_SHAPE: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}

_WORD_TEXT = """
the a an and or but if when then else for with without to from of in on at by as is are was be been
use uses used using write writes written read reads run runs test tests build builds make makes add
change changes fix fixes update remove rename move keep check return call show list ask asks answer
user users model models skill skills agent agents file files folder path line lines code commit
message messages summary body footer type scope release notes version feature bug error errors step
steps example examples input output format section sections rule rules description name should must
may can will do does not never always only each every one two three first last next this that these
those it its they their you your we our he she his her here there what why how data dataset train
training learning rate batch epoch epochs loss adapter weights token tokens python javascript json
yaml markdown api http request response server client job jobs queue worker function class method
value values key keys table tables query database index string number list good bad clear short long
simple small large new old fast slow safe same different other more less
"""
_WORDS = _WORD_TEXT.split()

_CODE = [
    "def main():\n    return 0\n",
    "import os\nprint(os.getcwd())\n",
    'curl -X POST http://localhost:8000/api/training/start -H "Content-Type: application/json"\n',
    'git commit -m "fix(parser): handle CRLF line endings"\n',
    "for i in range(10):\n    total += i\n",
    '{"name": "value", "count": 3, "items": [1, 2, 3]}\n',
    "---\nname: example-skill\ndescription: Use when the user asks.\n---\n",
    "## Heading\n\n- item one\n- item two\n\n1. first step\n2. second step\n",
]


def corpus(seed: int = SEED, sentences: int = 6000) -> list[str]:
    """A reproducible mix of English-like sentences, markdown and code."""
    rng = random.Random(seed)
    texts = []
    for index in range(sentences):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 18))]
        sentence = " ".join(words).capitalize() + rng.choice([".", ".", "?", ":", "!"])
        if index % 7 == 0:
            sentence = f"- {sentence}"
        if index % 11 == 0:
            sentence = f"## {sentence.title()}"
        texts.append(sentence)
        if index % 13 == 0:
            texts.append(rng.choice(_CODE))
    return texts


def build_tokenizer(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        model_max_length=MODEL_SHAPE["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))


def build_model(out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=int(tokenizer.convert_tokens_to_ids("<|im_end|>")),  # type: ignore[arg-type]
        pad_token_id=int(tokenizer.convert_tokens_to_ids("<|endoftext|>")),  # type: ignore[arg-type]
        dtype="float32",
        **MODEL_SHAPE,
    )
    torch.manual_seed(SEED)
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(str(out), safe_serialization=True)


def build(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out)
    build_model(out)
    (out / "README.md").write_text(
        "# tiny-qwen3\n\nThe embedded default model of Agent Skill Adapter: a randomly initialised "
        "Qwen3-architecture causal LM\nwith a byte-level BPE tokenizer and a ChatML template, built by "
        "`skill_adapter/assets/build_tiny_model.py`.\nIt exists to run the pipeline offline on a CPU in "
        "seconds. It has learnt no language.\n\n```json\n" + json.dumps(MODEL_SHAPE, indent=2) + "\n```\n"
    )
    return out


def main() -> None:
    from skill_adapter.assets import TINY_MODEL_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TINY_MODEL_DIR)
    args = parser.parse_args()
    print(f"built {build(args.out)}")


if __name__ == "__main__":
    main()
