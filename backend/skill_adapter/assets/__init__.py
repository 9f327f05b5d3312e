"""Files shipped inside the package.

``tiny-qwen3/`` is the embedded default model: a randomly initialised Qwen3-architecture causal LM of
about 160 thousand parameters with its own byte-level BPE tokenizer and ChatML template. It exists so
that the whole pipeline (parse, build, train, checkpoint, load with PeftModel) runs offline on a laptop
CPU in seconds. It knows no language; it is not meant to give useful answers. ``build_tiny_model.py``
rebuilds it deterministically.
"""

from pathlib import Path

TINY_MODEL_DIR = Path(__file__).resolve().parent / "tiny-qwen3"
