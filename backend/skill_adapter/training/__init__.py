"""The only package (with ``evaluation``) that imports torch, transformers, peft and trl."""
