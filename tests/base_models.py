"""Tiny base encoders made inside the test run, as users have them on disk: a RoBERTa (byte-level
BPE trained on the bundled English sample) and an XLM-R (sentencepiece unigram in XLM-R's
layout, trained on the same text), each a `save_pretrained` directory holding the tokenizer
and a randomly initialised *ForMaskedLM of the tiny config's shape. Nothing is downloaded."""

from __future__ import annotations

import io
from pathlib import Path

# The shape of configs/tiny.toml, so that the tiny config trains these models as they are.
TINY_SHAPE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=128, max_position_embeddings=514, type_vocab_size=1)
VOCAB_SIZE = 1500


def sample_lines(dump: Path) -> list[str]:
    """The clean paragraphs of a dump's articles."""
    from corpus.dump import iter_pages
    from corpus.siteinfo import SiteInfo
    from corpus.wikitext import parse_page

    reader = iter_pages(dump)
    texts = [parse_page(p.text, p.title, reader.site or SiteInfo.default()).text
             for p in reader if p.ns == 0 and p.redirect is None]
    return [line for text in texts for line in text.split("\n") if line.strip()]


def make_roberta(directory: Path, lines: list[str], seed: int = 0) -> Path:
    """A RoBERTa-family model directory: vocab.json, merges.txt, tokenizer files, weights."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=VOCAB_SIZE, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(directory))
    tokenizer = RobertaTokenizer.from_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    torch.manual_seed(seed)
    config = RobertaConfig(vocab_size=len(tokenizer), pad_token_id=1, bos_token_id=0,
                           eos_token_id=2, **TINY_SHAPE)
    RobertaForMaskedLM(config).save_pretrained(str(directory))
    return directory


def make_xlmr(directory: Path, lines: list[str], seed: int = 0) -> Path:
    """An XLM-R-family model directory: sentencepiece.bpe.model, tokenizer files, weights."""
    import sentencepiece as spm
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    # XLM-R's sentencepiece layout: <unk>=0, <s>=1, </s>=2, no pad piece
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model,
                                   model_type="unigram", vocab_size=VOCAB_SIZE, unk_id=0,
                                   bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    (directory / "sentencepiece.bpe.model").write_bytes(model.getvalue())
    tokenizer = XLMRobertaTokenizer.from_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    torch.manual_seed(seed)
    config = XLMRobertaConfig(vocab_size=len(tokenizer), pad_token_id=1, bos_token_id=0,
                              eos_token_id=2, **TINY_SHAPE)
    XLMRobertaForMaskedLM(config).save_pretrained(str(directory))
    return directory
