"""Corpus building: Wikipedia dump -> pages, entity vocabulary, tokenizer, examples.

This package never imports torch or deepspeed (tests/test_layering.py holds that)."""
