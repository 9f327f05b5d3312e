"""Evaluation: does the adapter carry the skill? Base, base + SKILL.md in the prompt, and adapter.

``metrics``, ``cases``, ``report`` and ``jobs`` are torch-free (the API and CLI import them); only
``runner`` imports torch, transformers and peft, and it runs in the evaluation's own process.
"""
