"""Skill -> training examples: generators, split, statistics."""
