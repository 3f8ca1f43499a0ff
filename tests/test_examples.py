"""Pretraining examples: ids exactly as transformers' tokenizer gives them, limits, splits, resume.

The key property, on every example of both bundled samples (English, and Bulgarian with its
locale from the dump's siteinfo): `tokenizer(text, entities=..., entity_spans=...)` with the
exported tokenizer gives back exactly the stored word_ids and entity_ids.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest

from corpus import examples_stage
from corpus.examples import Limits, examples_from_pages
from corpus.inspect import CorpusView, example_json
from corpus.options import BuildOptions, StageContext
from corpus.schema import (ENTITY_UNK_ID, EXAMPLE_COLUMNS, EXAMPLES_DIR, MANIFEST_FILE,
                           TOKENIZER_DIR, VALIDATION_DIR)
from corpus.sentences import sentence_spans
from corpus.word_encoder import WordEncoder
from corpus.word_tokenizer import load_tokenizer
from tests.conftest import BG_DUMP, EN_DUMP, TEST_BUILD, build_corpus

BG_BUILD = dict(max_seq_length=64, validation_pages=0, word_vocab_size=400)


@pytest.fixture(scope="module")
def bg_corpus(tmp_path_factory) -> Path:
    """The Bulgarian sample (one long article, so short sequences and no held-out page)."""
    return build_corpus(BG_DUMP, tmp_path_factory.mktemp("bg") / "corpus", **BG_BUILD)


def manifest_of(corpus: Path) -> dict:
    return json.loads((corpus / MANIFEST_FILE).read_text())["stages"]


def all_examples(corpus: Path):
    """(view, example) for every stored example of both splits, text re-derived from pages."""
    for split in ("examples", "validation"):
        view = CorpusView(corpus, split)
        for row in range(len(view.dataset)):
            yield view, view.example(row)


@pytest.mark.parametrize("corpus_name", ["en_corpus", "bg_corpus"])
def test_transformers_tokenizer_gives_back_the_stored_ids(corpus_name, request):
    corpus = request.getfixturevalue(corpus_name)
    tokenizer = load_tokenizer(corpus / TOKENIZER_DIR)
    checked = 0
    for _, example in all_examples(corpus):
        data = example_json(example, 0)
        encoded = tokenizer(data["text"], entities=data["entities"],
                            entity_spans=[tuple(s) for s in data["entity_spans"]],
                            max_entity_length=len(data["entities"]), truncation=False)
        assert encoded["input_ids"] == data["word_ids"], data["text"]
        assert encoded["entity_ids"] == data["entity_ids"], data["text"]
        checked += 1
    assert checked >= (100 if corpus_name == "en_corpus" else 10)


@pytest.mark.parametrize("corpus_name", ["en_corpus", "bg_corpus"])
def test_every_mention_decodes_to_its_anchor_text(corpus_name, request):
    corpus = request.getfixturevalue(corpus_name)
    tokenizer = load_tokenizer(corpus / TOKENIZER_DIR)
    limit = manifest_of(corpus)["examples"]["max_mention_length"]
    decoded = 0
    for _, example in all_examples(corpus):
        for mention, start, end in zip(example.mentions, example.entity_start,
                                       example.entity_end):
            ids = list(example.word_ids[start:end])
            anchor = example.text[mention.start:mention.end]
            if tokenizer.unk_token_id in ids:   # a character outside the small test vocabulary
                assert "<unk>" in tokenizer.decode(ids)
                continue
            if end - start == limit:              # possibly cut: a prefix of the anchor
                assert anchor.startswith(tokenizer.decode(ids))
                continue
            assert tokenizer.decode(ids) == anchor
            decoded += 1
    assert decoded >= (100 if corpus_name == "en_corpus" else 10)


@pytest.mark.parametrize("corpus_name", ["en_corpus", "bg_corpus"])
def test_packing_limits_hold(corpus_name, request):
    corpus = request.getfixturevalue(corpus_name)
    section = manifest_of(corpus)["examples"]
    tokenizer = load_tokenizer(corpus / TOKENIZER_DIR)
    dataset = datasets.load_from_disk(str(corpus / EXAMPLES_DIR))
    assert set(EXAMPLE_COLUMNS) <= set(dataset.column_names)
    for row in dataset:
        words, starts, ends = row["word_ids"], row["entity_start"], row["entity_end"]
        assert len(words) <= section["max_seq_length"]
        assert words[0] == tokenizer.bos_token_id and words[-1] == tokenizer.eos_token_id
        assert 1 <= len(row["entity_ids"]) <= section["max_entities"]
        assert len(starts) == len(ends) == len(row["entity_ids"])
        for start, end in zip(starts, ends):
            assert 1 <= start < end <= len(words) - 1
            assert end - start <= section["max_mention_length"]
        assert all(e <= s for e, s in zip(ends, starts[1:])), "mentions overlap or disorder"


def test_manifest_counts_match_the_data(en_corpus):
    section = manifest_of(en_corpus)["examples"]
    train = datasets.load_from_disk(str(en_corpus / EXAMPLES_DIR))
    validation = datasets.load_from_disk(str(en_corpus / VALIDATION_DIR))
    assert section["num_examples"] == len(train) > 0
    assert section["validation_examples"] == len(validation) > 0
    assert section["tokens"] == sum(len(w) for w in train["word_ids"])
    assert section["entities"] == sum(len(e) for e in train["entity_ids"])
    assert sum(section["length_histogram"].values()) == len(train)
    [language] = section["languages"]
    assert (language["language"], language["locale"]) == ("en", "en")
    assert language["rows"] == [0, len(train)]
    assert language["validation_rows"] == [0, len(validation)]
    counts = section["counts"]
    assert counts["examples"] == len(train) + len(validation)
    assert counts["sentences_too_short"] > 0   # headings and fragments of the real articles
    assert len(list((en_corpus / EXAMPLES_DIR).glob("*.arrow"))) >= 2  # several shards


def test_validation_shares_no_page_with_training(en_corpus):
    section = manifest_of(en_corpus)["examples"]
    train_pages = set(datasets.load_from_disk(str(en_corpus / EXAMPLES_DIR))["page_id"])
    validation_pages = set(datasets.load_from_disk(str(en_corpus / VALIDATION_DIR))["page_id"])
    assert validation_pages and train_pages
    assert not train_pages & validation_pages
    [language] = section["languages"]
    assert validation_pages <= set(language["validation_page_ids"])
    assert len(language["validation_page_ids"]) == TEST_BUILD["validation_pages"]
    assert not train_pages & set(language["validation_page_ids"])


def test_bulgarian_locale_comes_from_the_dump_siteinfo(bg_corpus):
    [language] = manifest_of(bg_corpus)["examples"]["languages"]
    assert (language["language"], language["locale"]) == ("bg", "bg")


# --- the pure functions on pages that exercise each way a mention can sit in its text ---

@pytest.fixture(scope="module")
def encoder_and_vocab(en_corpus):
    """transformers' tokenizer (the proof) and the stage's encoder, read from the files alone."""
    tokenizer = load_tokenizer(en_corpus / TOKENIZER_DIR)
    encoder = WordEncoder.from_file(en_corpus / TOKENIZER_DIR / "tokenizer.json")
    return tokenizer, encoder, dict(tokenizer.entity_vocab)


def make_page(text: str, links: list[tuple[str, str]], page_id: int = 7) -> dict:
    """A page whose links are given by anchor text (first occurrence after the previous)."""
    starts, ends, targets, cursor = [], [], [], 0
    for anchor, target in links:
        start = text.index(anchor, cursor)
        starts.append(start)
        ends.append(start + len(anchor))
        targets.append(target)
        cursor = start + len(anchor)
    return {"id": page_id, "title": "T", "text": text, "link_start": starts, "link_end": ends,
            "link_target": targets}


def round_trip(tokenizer, example) -> None:
    data = example_json(example, 0)
    encoded = tokenizer(data["text"], entities=data["entities"],
                        entity_spans=[tuple(s) for s in data["entity_spans"]],
                        max_entity_length=len(data["entities"]), truncation=False)
    assert encoded["input_ids"] == data["word_ids"]
    assert encoded["entity_ids"] == data["entity_ids"]


def build(page, encoder_and_vocab, counts=None, **limits):
    tokenizer, encoder, vocab = encoder_and_vocab
    counts = Counter() if counts is None else counts
    return examples_from_pages([page], encoder, "en", vocab,
                               Limits(**{"min_sentence_tokens": 1, **limits}), counts)


def test_awkward_mention_positions_round_trip(encoder_and_vocab):
    tokenizer, _, vocab = encoder_and_vocab
    title = next(t for t in vocab if not t.startswith("["))
    text = ("The  state\tof Estonia (un-Estonian) had\u00a0[x] Estonia Estonia.\n\n"
            "Emoji \U0001F600 precede Estonia here.   Estonia starts a sentence too.  "
            "He said ``EstoniaEstonia'' twice.")
    page = make_page(text, [("Estonia", title), ("Estonian", title), ("Estonia", title),
                            ("Estonia", title), ("Estonia", title), ("Estonia", title),
                            ("Estonia", title), ("Estonia", title)])
    examples = build(page, encoder_and_vocab)
    assert sum(len(e.mentions) for e in examples) == 8
    for example in examples:
        assert "  " not in example.text and "\t" not in example.text
        round_trip(tokenizer, example)


def test_anchor_spaces_stay_outside_the_mention(encoder_and_vocab):
    tokenizer, _, _ = encoder_and_vocab
    text = "We visit  Estonia\t today and then some more words here."
    start = text.index("  Estonia")
    page = {"id": 1, "title": "T", "text": text, "link_start": [start],
            "link_end": [text.index("today")], "link_target": ["Estonia"]}
    [example] = build(page, encoder_and_vocab)
    [mention] = example.mentions
    assert example.text == "We visit Estonia today and then some more words here."
    assert example.text[mention.start:mention.end] == "Estonia"
    round_trip(tokenizer, example)


def test_unknown_entities_keep_or_drop(encoder_and_vocab):
    tokenizer, _, vocab = encoder_and_vocab
    page = make_page("Estonia borders Nowhereland in this sentence.",
                     [("Estonia", "Estonia"), ("Nowhereland", "No such title in the vocab")])
    kept_counts, dropped_counts = Counter(), Counter()
    kept = build(page, encoder_and_vocab, kept_counts, unk_entities="keep")[0]
    dropped = build(page, encoder_and_vocab, dropped_counts, unk_entities="drop")[0]
    assert kept.entity_ids[-1] == ENTITY_UNK_ID and kept_counts["mentions_unk_kept"] == 1
    assert ENTITY_UNK_ID not in dropped.entity_ids and dropped_counts["mentions_unk_dropped"] == 1
    assert len(dropped.mentions) == len(kept.mentions) - 1
    round_trip(tokenizer, kept)
    round_trip(tokenizer, dropped)


def test_entity_and_mention_limits_cut_without_breaking_ids(encoder_and_vocab):
    tokenizer, _, vocab = encoder_and_vocab
    text = "Estonia, Estonia, Estonia and Estonia-Estonia met the Republic of Estonian Affairs."
    page = make_page(text, [("Estonia", "Estonia")] * 5 + [("Republic of Estonian Affairs",
                                                            "Estonia")])
    counts = Counter()
    [example] = build(page, encoder_and_vocab, counts, max_entities=4, max_mention_length=2)
    assert len(example.mentions) == 4 and counts["mentions_over_max_entities"] == 2
    assert all(e - s <= 2 for s, e in zip(example.entity_start, example.entity_end))
    round_trip(tokenizer, example)


def test_packing_is_greedy_within_the_length(encoder_and_vocab):
    tokenizer, _, vocab = encoder_and_vocab
    sentence = "Estonia is a country in the north of Europe near the sea. "
    page = make_page(sentence * 12, [("Estonia", "Estonia")] * 12)
    examples = build(page, encoder_and_vocab, max_seq_length=40)
    per_sentence = len(tokenizer(sentence.strip())["input_ids"]) - 2
    assert all(len(e.word_ids) <= 40 for e in examples)
    assert [len(e.mentions) for e in examples] == [38 // per_sentence] * len(examples)
    for example in examples:
        round_trip(tokenizer, example)


def test_sentences_with_special_token_text_are_dropped(encoder_and_vocab):
    page = make_page("Estonia uses <s> as text here. Estonia is fine here.",
                     [("Estonia", "Estonia"), ("Estonia", "Estonia")])
    counts = Counter()
    [example] = build(page, encoder_and_vocab, counts)
    assert example.text == "Estonia is fine here." and counts["sentences_with_special_text"] == 1


def test_sentence_split_counts_utf16_and_never_cuts_a_mention():
    text = "Emoji \U0001F600\U0001F600 here. Mr. X went home. It ends."
    spans = sentence_spans(text, "en")
    assert [text[s:e].strip() for s, e in spans] == ["Emoji \U0001F600\U0001F600 here.",
                                                     "Mr. X went home.", "It ends."]
    inside = text.index("home. It") + 2
    joined = sentence_spans(text, "en", [(inside, inside + 6)])
    assert [text[s:e].strip() for s, e in joined] == [
        "Emoji \U0001F600\U0001F600 here.", "Mr. X went home. It ends."]


@pytest.mark.parametrize("locale, texts", [
    ("en", ["Mr. X went home. It ends.", "", "It ends with Mr.", "Dr. Who came.",
            "Emoji \U0001F600 here. More.", "Line\n\nbreaks. And", "  ", "e.g. this\n"]),
    ("ja", ["東京は首都です。大阪は都市です！", "「本当？」と聞いた。", "終わりのない文",
            "\U00020B9F字です。次。"]),
    ("zh", ["中文句子。第二句！", "没有句号", "他说：“好。”然后走了。"]),
    ("bg", ["Г-н Иванов дойде. Тръгна си.", "Това е т.е. пример. Край"]),
])
def test_sentence_ends_of_many_texts_at_once_are_each_texts_own(locale, texts):
    """One ICU breaker over texts joined by paragraph separators gives each text the ends it
    has alone, also where a suppression ("Mr.", "e.g.") stands at a text's end or start."""
    from icu4py.breakers import SentenceBreaker

    from corpus.sentences import icu_locale, sentence_ends, utf16_to_index

    def alone(text):
        breaker = SentenceBreaker(text, icu_locale(locale))
        return utf16_to_index(text, [end for _, end in breaker.segments()]) if text else []

    texts = texts + texts[::-1]               # every text before and after every other kind
    assert sentence_ends(texts, locale) == [alone(text) for text in texts]
    assert sentence_ends([], locale) == [] and sentence_ends([""], locale) == [[]]


# --- the stage: workers, resume ---

def stage_context(corpus: Path, workers: int) -> StageContext:
    options = BuildOptions(dumps=(EN_DUMP,), out=corpus, **{**TEST_BUILD, "workers": workers})
    return StageContext(options=options, manifest=manifest_of(corpus), workers=workers)


def test_interrupted_run_resumes_without_redoing_finished_shards(en_corpus_copy, monkeypatch):
    original = manifest_of(en_corpus_copy)["examples"]
    real_build_shard = examples_stage.build_shard
    built: list[str] = []

    def build_two_then_stop(job):
        if len(built) == 2:
            raise KeyboardInterrupt
        built.append(job.name)
        return real_build_shard(job)

    monkeypatch.setattr(examples_stage, "build_shard", build_two_then_stop)
    with pytest.raises(KeyboardInterrupt):
        examples_stage.run(stage_context(en_corpus_copy, workers=1))
    assert len(list((en_corpus_copy / examples_stage.PARTS_DIR).glob("examples-*.json"))) == 2

    def record(job):
        built.append(job.name)
        return real_build_shard(job)

    monkeypatch.setattr(examples_stage, "build_shard", record)
    section = examples_stage.run(stage_context(en_corpus_copy, workers=1))
    assert len(built) == len(set(built)), "a finished shard was built again"
    assert section["fingerprint"] == original["fingerprint"]
    assert section["num_examples"] == original["num_examples"]
    assert not (en_corpus_copy / examples_stage.PARTS_DIR).exists()


@pytest.mark.slow
def test_two_workers_give_the_same_examples(en_corpus_copy):
    section = examples_stage.run(stage_context(en_corpus_copy, workers=2))
    original = manifest_of(en_corpus_copy)["examples"]
    assert section["fingerprint"] == original["fingerprint"]
    assert section["counts"] == original["counts"]


def test_stage_encoder_needs_no_transformers_and_matches_it(en_corpus):
    """A worker loads the encoder without importing transformers (or torch), and its ids and
    special ids are those of transformers' own tokenizer."""
    script = ("import sys, tempfile; from corpus import examples_stage; "
              f"encoder = examples_stage._encoder({str(en_corpus / TOKENIZER_DIR)!r}); "
              f"vocab = examples_stage._entity_index({str(en_corpus / TOKENIZER_DIR)!r}, "
              "tempfile.mkdtemp()); "
              "print(encoder.encode(['Hello world, a test.'])[0], encoder.bos_id, "
              "encoder.eos_id, encoder.unk_id, len(vocab), "
              "'transformers' in sys.modules or 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    tokenizer = load_tokenizer(en_corpus / TOKENIZER_DIR)
    expected = tokenizer("Hello world, a test.")["input_ids"]
    assert " ".join(out[:-5]) == str(expected[1:-1])
    assert out[-5:] == [str(expected[0]), str(expected[-1]), str(tokenizer.unk_token_id),
                        str(len(tokenizer.entity_vocab)), "False"]


def test_a_worker_builds_a_shard_without_datasets_transformers_or_torch(en_corpus, tmp_path):
    """Each of those imports costs a worker process seconds; a shard needs none of them."""
    script = ("import sys; from pathlib import Path; from corpus import examples_stage as es; "
              "from corpus.examples import Limits; "
              f"d = Path({str(en_corpus)!r}); "
              "rows = range(es._pages(str(d / 'pages')).num_rows); "
              "plan = es.LanguagePlan('en', 'en', rows, ''); "
              "jobs = es.plan_jobs([plan], {'en': []}, d / 'pages', d / 'tokenizer', Limits(), "
              f"Path({str(tmp_path)!r})); "
              "result = es.build_shard(jobs[0]); "
              "print(result['counts']['examples'] > 0, "
              "[m for m in ('datasets', 'transformers', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split(maxsplit=1)
    assert out == ["True", "[]\n"]


def test_held_out_pages_are_sharded_like_training_pages(tmp_path):
    """Many held-out pages become several validation shards of at most MAX_PAGES_PER_SHARD
    pages, in row order after the training shards: one shard of them all would be one
    worker's work after the others end."""
    pages = 5 * examples_stage.MAX_PAGES_PER_SHARD
    held_out = examples_stage.choose_validation_rows(pages, pages // 2 + 1, seed=0)
    plan = examples_stage.LanguagePlan("en", "en", range(pages), "")
    jobs = examples_stage.plan_jobs([plan], {"en": held_out}, tmp_path / "pages",
                                    tmp_path / "tokenizer", Limits(), tmp_path)
    validation = [job for job in jobs if job.split == "validation"]
    assert [job.split for job in jobs] == ["examples"] * (len(jobs) - 3) + ["validation"] * 3
    assert [job.name for job in validation] == [f"validation-{i:05d}" for i in range(3)]
    assert all(0 < len(job.rows) <= examples_stage.MAX_PAGES_PER_SHARD for job in validation)
    assert np.concatenate([job.rows for job in validation]).tolist() == held_out
    training = np.concatenate([job.rows for job in jobs if job.split == "examples"])
    assert sorted([*training.tolist(), *held_out]) == list(range(pages))


def test_impossible_limits_are_refused_by_name(en_corpus_copy):
    ctx = stage_context(en_corpus_copy, workers=1)
    ctx.options = dataclasses.replace(ctx.options, max_seq_length=2, max_entities=0)
    with pytest.raises(ValueError, match="--max-seq-length must be >= 3, not 2; "
                                         "--max-entities must be >= 1, not 0"):
        examples_stage.run(ctx)


def test_workers_read_pages_saved_in_several_files_in_order(en_corpus, tmp_path):
    """Workers read DIR/pages with pyarrow alone; a large dump's pages span several files."""
    several = tmp_path / "pages"
    datasets.load_from_disk(str(en_corpus / "pages")).save_to_disk(str(several), num_shards=3)
    assert len(list(several.glob("*.arrow"))) == 3
    table = examples_stage._pages(str(several))
    assert table.to_pylist() == datasets.load_from_disk(str(several)).to_list()


def test_mentions_at_sentence_edges_and_runs_of_whitespace_round_trip(encoder_and_vocab):
    """Whitespace at the page's start and end and in runs, mentions that are a whole sentence
    or start or end one, adjacent ones, one cut inside a word: sentences are collapsed once and
    their mentions moved with them, and transformers gives back every id."""
    tokenizer, _, _ = encoder_and_vocab
    text = ("  \n Estonia\n\nEstonia is here.  Go to   Estonia\tEstoniaEstonia.\n"
            "   Visit  \t Estonia   and un-Estonian ones.  \n")
    page = make_page(text, [("Estonia", "Estonia")] * 6 + [("Estonian", "Estonia")])
    counts = Counter()
    examples = build(page, encoder_and_vocab, counts)
    assert sum(len(e.mentions) for e in examples) == 7
    for example in examples:
        assert example.text == " ".join(example.text.split())
        assert all(example.text[m.start:m.end] in ("Estonia", "Estonian")
                   for m in example.mentions)
        round_trip(tokenizer, example)


def test_a_batch_table_holds_the_examples_rows(encoder_and_vocab):
    import pyarrow as pa

    sentence = "Estonia is a country in the north of Europe near the sea. "
    examples = build(make_page(sentence * 12, [("Estonia", "Estonia")] * 12), encoder_and_vocab,
                     max_seq_length=40)
    assert len(examples) > 1
    rows = {column: [e.row()[column] for e in examples] for column in EXAMPLE_COLUMNS}
    expected = pa.Table.from_pydict(rows, schema=examples_stage.example_schema())
    assert examples_stage.examples_table(examples).equals(expected)
    assert examples_stage.examples_table([]).num_rows == 0
