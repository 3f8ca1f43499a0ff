"""Pretraining: dataloader, masking, DeepSpeed training of LukeForMaskedLM, export.

Reads a corpus build only through corpus/schema.py names and its manifest; never imports
mwparserfromhell."""
