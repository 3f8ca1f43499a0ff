"""Make a tiny base encoder to try `--base-model` / `--init-from` without downloading one.

    python launch/tiny_base_model.py {roberta,xlm-roberta} OUT [--dump DUMP] [--vocab-size V]

Writes OUT as transformers' `save_pretrained` writes a real RoBERTa or XLM-R: its tokenizer
(byte-level BPE, or sentencepiece in XLM-R's layout), trained here on the clean text of DUMP
(default: the bundled English sample), and a randomly initialised *ForMaskedLM of the shape of
configs/tiny.toml, so that `luke-train --config configs/tiny.toml --init-from OUT` runs as it
is. The tests make their base models with it too. For real work use the encoder you have
(/models/roberta-base, /models/xlm-roberta-base ...): the commands are the same.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLED_DUMP = REPO / "tests" / "data" / "enwiki-sample-5-articles.xml.bz2"
# The shape of configs/tiny.toml.
TINY_SHAPE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=128, max_position_embeddings=514, type_vocab_size=1)
FAMILIES = ("roberta", "xlm-roberta")


def clean_lines(dump: Path) -> list[str]:
    """The clean paragraphs of a dump's articles (the corpus build's own parser)."""
    from corpus.dump import DumpReader
    from corpus.siteinfo import SiteInfo
    from corpus.wikitext import parse_page

    reader = DumpReader(dump)
    texts = [parse_page(p.text, p.title, reader.site or SiteInfo.default()).text
             for p in reader if p.ns == 0 and p.redirect is None]
    return [line for text in texts for line in text.split("\n") if line.strip()]


def make_roberta(out: Path, lines: list[str], vocab_size: int = 1500, seed: int = 0) -> Path:
    """A RoBERTa-family model directory: vocab.json, merges.txt, tokenizer files, weights."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizer

    out.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=vocab_size, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(out))
    return save_with_random_model(out, RobertaTokenizer.from_pretrained(str(out)),
                                  RobertaConfig, RobertaForMaskedLM, seed)


def make_xlmr(out: Path, lines: list[str], vocab_size: int = 1500, seed: int = 0) -> Path:
    """An XLM-R-family model directory: sentencepiece.bpe.model, tokenizer files, weights."""
    import sentencepiece as spm
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaTokenizer

    out.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    # XLM-R's sentencepiece layout: <unk>=0, <s>=1, </s>=2, no pad piece
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model,
                                   model_type="unigram", vocab_size=vocab_size, unk_id=0,
                                   bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    (out / "sentencepiece.bpe.model").write_bytes(model.getvalue())
    return save_with_random_model(out, XLMRobertaTokenizer.from_pretrained(str(out)),
                                  XLMRobertaConfig, XLMRobertaForMaskedLM, seed)


def save_with_random_model(out: Path, tokenizer, config_class, model_class, seed: int) -> Path:
    """Save `tokenizer` and a randomly initialised model of TINY_SHAPE over its vocabulary into
    `out` (both families number <s>, <pad>, </s> 0, 1, 2)."""
    import torch

    tokenizer.save_pretrained(str(out))
    torch.manual_seed(seed)
    config = config_class(vocab_size=len(tokenizer), pad_token_id=1, bos_token_id=0,
                          eos_token_id=2, **TINY_SHAPE)
    model_class(config).save_pretrained(str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("family", choices=FAMILIES)
    parser.add_argument("out", type=Path, help="the model directory to write")
    parser.add_argument("--dump", type=Path, default=BUNDLED_DUMP,
                        help="the dump whose text trains the tokenizer (default: the bundled "
                             "English sample)")
    parser.add_argument("--vocab-size", type=int, default=1500)
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        print(f"tiny_base_model: {args.out} is not empty", file=sys.stderr)
        return 1
    make = make_roberta if args.family == "roberta" else make_xlmr
    make(args.out, clean_lines(args.dump), args.vocab_size)
    print(f"wrote a tiny {args.family} model to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
