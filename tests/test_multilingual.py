"""A corpus of several languages: two dumps (English and Bulgarian wikitext written here, in the
real dump format), each wiki's page_props dump (the real MySQL layout, corpus/page_props_sql.py)
giving the Wikidata items, one entity per item keyed "<lang>:<title>", examples per language,
and the refusals of inputs that do not belong together.

The two wikis, with the items the page_props dumps give their articles:
  English: Tokyo Q1490, Japan Q17, Sofia Q472, Bulgaria Q219, London Q84, Sandbox article (no
           item), and the redirect Tokio -> Tokyo;
  Bulgarian: София Q472, България Q219, Токио Q1490, Пловдив Q459.
Links to each article (redirects resolved), by language:
  Tokyo en 4 (Japan 2, Sofia 1, London 1 through Tokio) + bg 1 (София) = 5
  Sofia en 2 (Bulgaria, London) + bg 2 (България, Токио) = 4
  Bulgaria en 1 (Sofia) + bg 2 (София, Пловдив) = 3
  London en 2 (Tokyo, Sofia); Japan en 1 (Tokyo); Plovdiv bg 1 (България)
  and, without an item: en Sandbox article 1 (an article), en Plovdiv 1, en Mars 1 and bg
  Япония 1 (no article in their dump).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import datasets
import pyarrow as pa
import pytest

from corpus import schema
from corpus.build import build
from corpus.options import BuildOptions
from corpus.page_props_sql import write_page_props
from test_dump import dump_xml, write_dump

EN_PAGES = [
    dict(title="Tokyo", page_id=101, text="Tokyo is the capital of [[Japan]]. It is larger "
         "than [[London]] by far, and it has many districts and rivers."),
    dict(title="Japan", page_id=102, text="Japan is an island country in Asia with a long "
         "history. Its capital is [[Tokyo]], and [[Tokyo]] is its largest city as well."),
    dict(title="Sofia", page_id=103, text="Sofia is the capital of [[Bulgaria]] in Europe. "
         "Flights go from there to [[Tokyo]] and to [[London]] every day of the week."),
    dict(title="Bulgaria", page_id=104, text="Bulgaria is a country in Europe by the Black "
         "Sea. Its capital is [[Sofia]], and its second city is [[Plovdiv]] in the south."),
    dict(title="London", page_id=105, text="London is a large city on the river Thames. "
         "[[Tokio|Tokyo]] and [[Sofia]] are capitals too, and [[Sandbox article]] is not."),
    dict(title="Sandbox article", page_id=106, text="This article has no Wikidata item. "
         "It is here to be read, like a page about [[Mars]]."),
    dict(title="Tokio", page_id=107, text="#REDIRECT [[Tokyo]]", redirect="Tokyo"),
]
BG_PAGES = [
    dict(title="София", page_id=201, text="София е столицата на [[България]] и най-големият "
         "град в страната. Има полети до [[Токио]] всеки ден от седмицата."),
    dict(title="България", page_id=202, text="България е държава в Европа на Черно море. "
         "Столица е [[София]], а вторият по големина град е [[Пловдив]] на юг."),
    dict(title="Токио", page_id=203, text="Токио е столицата на [[Япония]] и е много голям "
         "град. [[София]] е далеч от него, на другия край на света."),
    dict(title="Пловдив", page_id=204, text="Пловдив е стар град в [[България]] на река "
         "Марица. Той е един от най-старите градове в Европа и е много красив."),
]
# (page, propname, value[, sortkey]): the items, and other properties around them as real
# dumps hold them (an escaped quote, a sort key, an item of a page outside the articles).
EN_PROPS = [(101, "wikibase_item", "Q1490"), (101, "defaultsort", "Tokyo, City of"),
            (102, "page_image_free", "Flag_of_Japan's_(1870).svg"),
            (102, "wikibase_item", "Q17"), (103, "wikibase_item", "Q472"),
            (104, "wikibase_item", "Q219"), (104, "wikibase-shortdesc", "Country in Europe"),
            (105, "wikibase_item", "Q84"), (105, "page_top_level_section_count", "12", 12.0),
            (900, "wikibase_item", "Q4167836")]
BG_PROPS = [(201, "wikibase_item", "Q472"), (202, "wikibase_item", "Q219"),
            (202, "displaytitle", "Република \\ България"), (203, "wikibase_item", "Q1490"),
            (204, "wikibase_item", "Q459")]

BUILD = dict(word_vocab_size=300, max_seq_length=128, max_entities=16, validation_pages=1,
             workers=1, min_link_count=1)


@pytest.fixture(scope="module")
def wikis(tmp_path_factory) -> dict[str, Path]:
    """The two dumps and their page_props dumps."""
    root = tmp_path_factory.mktemp("wikis")
    return {"en": write_dump(root / "enwiki-20240601-pages-articles.xml.bz2", EN_PAGES),
            "bg": write_dump(root / "bgwiki-20240601-pages-articles.xml.bz2", BG_PAGES,
                             dbname="bgwiki"),
            "en_props": write_page_props(root / "enwiki-20240601-page_props.sql.gz", "enwiki",
                                         EN_PROPS),
            "bg_props": write_page_props(root / "bgwiki-20240601-page_props.sql.gz", "bgwiki",
                                         BG_PROPS)}


def build_two(wikis, out: Path, until: str | None = None, **options) -> Path:
    values = {**BUILD, "dumps": (wikis["en"], wikis["bg"]),
              "wikidata_ids": (wikis["en_props"], wikis["bg_props"]), **options}
    build(BuildOptions(out=out, **values), until=until)
    return out


@pytest.fixture(scope="module")
def two_languages(wikis, tmp_path_factory) -> Path:
    return build_two(wikis, tmp_path_factory.mktemp("ml") / "corpus")


def vocab_of(corpus: Path) -> dict[str, int]:
    return json.loads((corpus / schema.ENTITY_VOCAB_DIR / schema.ENTITY_VOCAB_FILE).read_text())


def counts_of(corpus: Path) -> dict[str, dict]:
    lines = (corpus / schema.ENTITY_VOCAB_DIR / schema.ENTITY_COUNTS_FILE).read_text()
    return {line["item"]: line for line in map(json.loads, lines.splitlines()) if line["item"]}


def test_one_id_per_item_under_each_language_key_in_count_order(two_languages):
    vocab = vocab_of(two_languages)
    assert {key: vocab[key] for key in schema.ENTITY_SPECIALS} == {"[PAD]": 0, "[UNK]": 1,
                                                                   "[MASK]": 2, "[MASK2]": 3}
    ids = {key: value for key, value in vocab.items() if key not in schema.ENTITY_SPECIALS}
    # Counts 5, 4, 3, 2, then the two items of one link by item number (Q17 before Q459).
    assert ids == {"en:Tokyo": 4, "bg:Токио": 4, "en:Sofia": 5, "bg:София": 5,
                   "en:Bulgaria": 6, "bg:България": 6, "en:London": 7, "en:Japan": 8,
                   "bg:Пловдив": 9}


def test_counts_of_an_item_are_summed_over_the_languages(two_languages):
    counts = counts_of(two_languages)
    assert counts["Q1490"]["count"] == 5 and counts["Q1490"]["id"] == 4
    assert counts["Q1490"]["entities"] == [["Tokyo", "en"], ["Токио", "bg"]]
    assert {item: line["count"] for item, line in counts.items()} == {
        "Q1490": 5, "Q472": 4, "Q219": 3, "Q84": 2, "Q17": 1, "Q459": 1}
    section = json.loads((two_languages / schema.MANIFEST_FILE).read_text())["stages"]
    figures = section["entity_vocab"]["languages"]
    assert figures["en"]["articles_with_item"] == 5 and figures["en"]["articles_without_item"] == 1
    assert figures["bg"]["dbname"] == "bgwiki" and figures["bg"]["articles_with_item"] == 4
    assert section["entity_vocab"]["counts"]["items"] == 6


def test_min_languages_keeps_the_items_of_enough_languages(wikis, tmp_path):
    corpus = build_two(wikis, tmp_path / "c", min_languages=2, until="entity_vocab")
    assert set(vocab_of(corpus)) - set(schema.ENTITY_SPECIALS) == {
        "en:Tokyo", "bg:Токио", "en:Sofia", "bg:София", "en:Bulgaria", "bg:България"}


def test_local_entities_keep_the_articles_without_an_item(wikis, tmp_path):
    corpus = build_two(wikis, tmp_path / "c", local_entities=True, until="entity_vocab")
    vocab = vocab_of(corpus)
    # An article without an item stays, after the items of its count; a target that is no
    # article of its dump (en:Plovdiv, bg:Япония) does not, outside --partial-dump.
    assert vocab["en:Sandbox article"] == 10
    assert "en:Plovdiv" not in vocab and "bg:Япония" not in vocab
    partial = build_two(wikis, tmp_path / "p", local_entities=True, partial_dump=True,
                        until="entity_vocab")
    assert {"en:Plovdiv", "bg:Япония", "en:Sandbox article"} <= set(vocab_of(partial))


def test_the_tokenizer_maps_both_keys_of_an_item_to_one_id(two_languages):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(two_languages / schema.TOKENIZER_DIR))
    assert type(tokenizer).__name__ == "MLukeTokenizer"
    bulgarian = tokenizer("Токио е голям.", entities=["bg:Токио"], entity_spans=[(0, 5)])
    english = tokenizer("Tokyo is big.", entities=["en:Tokyo"], entity_spans=[(0, 5)])
    assert bulgarian["entity_ids"] == english["entity_ids"] == [4]


def test_pages_and_examples_are_listed_per_language(two_languages):
    stages = json.loads((two_languages / schema.MANIFEST_FILE).read_text())["stages"]
    pages = stages["pages"]["languages"]
    assert [(p["language"], p["rows"], p["id_offset"], p["counts"]["articles"])
            for p in pages] == [("en", [0, 6], 0, 6), ("bg", [6, 10], schema.PAGE_ID_STRIDE, 4)]
    table = datasets.load_from_disk(str(two_languages / schema.PAGES_DIR))
    assert table["id"][6:] == [schema.PAGE_ID_STRIDE + page["page_id"] for page in BG_PAGES]
    redirects = (two_languages / schema.REDIRECTS_FILE).read_text().splitlines()
    assert redirects == ["en:Tokio\ten:Tokyo"]
    examples = stages["examples"]["languages"]
    assert [e["language"] for e in examples] == ["en", "bg"]
    assert examples[0]["rows"][1] == examples[1]["rows"][0]
    assert examples[0]["validation_rows"][1] == examples[1]["validation_rows"][0]
    assert examples[1]["rows"][1] == stages["examples"]["num_examples"]
    assert all(len(e["validation_page_ids"]) == 1 for e in examples)
    assert examples[1]["validation_page_ids"][0] > schema.PAGE_ID_STRIDE


def test_the_word_tokenizer_trains_on_a_language_balanced_sample(two_languages):
    """Each language's lines in proportion to its paragraphs ** 0.7 (--language-alpha)."""
    stages = json.loads((two_languages / schema.MANIFEST_FILE).read_text())["stages"]
    shares = stages["tokenizer"]["training_lines"]
    assert shares == {"en": {"paragraphs": 6, "lines": 6}, "bg": {"paragraphs": 4, "lines": 4}}
    # 10 lines in all: 6 ** 0.7 : 4 ** 0.7 = 3.50 : 2.64, so 5.70 : 4.30 -> 6 and 4 (rounded);
    # a smaller language gains: here the split is the natural one only because the two are close.
    from corpus.tokenizer_stage import page_texts, balanced_sample

    sample, skewed = balanced_sample(page_texts(two_languages / schema.PAGES_DIR),
                                     stages["pages"]["languages"], alpha=0.1, seed=0)
    assert skewed == {"en": {"paragraphs": 6, "lines": 5}, "bg": {"paragraphs": 4, "lines": 5}}
    assert len(sample.lines) == 10


def test_the_balanced_sample_keeps_each_language_under_its_share_of_the_character_cap(
        two_languages, monkeypatch):
    """Past sentencepiece's character cap each language gives whole pages up to its share of
    it, the same from the same seed whatever the pages' files."""
    from corpus import word_tokenizer as wt
    from corpus.tokenizer_stage import balanced_sample, page_texts

    languages = json.loads((two_languages / schema.MANIFEST_FILE).read_text()
                           )["stages"]["pages"]["languages"]
    texts = page_texts(two_languages / schema.PAGES_DIR)
    monkeypatch.setattr(wt, "SP_MAX_TRAINING_CHARS", 400)       # pages of ~100 characters
    sample, shares = balanced_sample(texts, languages, alpha=0.7, seed=0)
    assert sample.capped and 0 < sample.characters <= 400
    assert all(0 < share["lines"] < share["paragraphs"] for share in shares.values())
    rechunked = pa.chunked_array([c for chunk in texts.chunks for c in
                                  (chunk.slice(0, 3), chunk.slice(3))])
    assert balanced_sample(rechunked, languages, alpha=0.7, seed=0) == (sample, shares)


def test_the_examples_of_each_language_link_its_own_keys(two_languages):
    """A Bulgarian sentence linking Токио carries Tokyo's one id, as an English one does."""
    stages = json.loads((two_languages / schema.MANIFEST_FILE).read_text())["stages"]
    train = datasets.load_from_disk(str(two_languages / schema.EXAMPLES_DIR))
    validation = datasets.load_from_disk(str(two_languages / schema.VALIDATION_DIR))
    by_language = {}
    for entry in stages["examples"]["languages"]:
        rows = [*train.select(range(*entry["rows"])),
                *validation.select(range(*entry["validation_rows"]))]
        assert all((row["page_id"] >= schema.PAGE_ID_STRIDE) == (entry["language"] == "bg")
                   for row in rows)
        by_language[entry["language"]] = {e for row in rows for e in row["entity_ids"]}
    assert 4 in by_language["en"] and 4 in by_language["bg"]       # Tokyo / Токио
    assert 7 in by_language["en"] and 7 not in by_language["bg"]   # London: English only


# ---------------------------------------------------------------- inputs that do not match

def test_a_page_props_dump_of_the_other_wiki_is_refused(wikis, tmp_path, capsys):
    from corpus.cli import main

    code = main(["build", str(wikis["en"]), str(wikis["bg"]), "--out", str(tmp_path / "c"),
                 "--wikidata-ids", str(wikis["bg_props"]), str(wikis["en_props"])])
    err = capsys.readouterr().err
    assert code == 1
    assert (f"{wikis['bg_props']}: a page_props dump of bgwiki, but {wikis['en']} is enwiki"
            in err)


def test_a_page_props_dump_of_another_date_is_refused(wikis, tmp_path, capsys):
    """Page ids of another date name other pages: most of the dump's articles find no item."""
    from corpus.cli import main

    shifted = write_page_props(tmp_path / "enwiki-20230101-page_props.sql.gz", "enwiki",
                               [(page + 1000, name, value) for page, name, value, *_ in EN_PROPS])
    code = main(["build", str(wikis["en"]), str(wikis["bg"]), "--out", str(tmp_path / "c"),
                 "--wikidata-ids", str(shifted), str(wikis["bg_props"])])
    assert code == 1
    assert (f"{shifted}: only 0 of the 6 articles of {wikis['en']} have a Wikidata item "
            "there: it is another wiki's or another date's page_props dump"
            in capsys.readouterr().err)


def test_a_language_given_twice_is_refused(wikis, tmp_path, capsys):
    from corpus.cli import main

    other = write_dump(tmp_path / "enwiki-other.xml", EN_PAGES[:2])
    code = main(["build", str(wikis["en"]), str(other), "--out", str(tmp_path / "c"),
                 "--local-entities"])
    assert code == 1
    assert (f"{other} and {wikis['en']} are both 'en' wikis: give one dump per language"
            in capsys.readouterr().err)


def test_a_dump_that_names_no_language_is_refused_unless_given_one(wikis, tmp_path, capsys):
    from corpus.cli import main

    bare = tmp_path / "fragment.xml"
    bare.write_text(dump_xml(BG_PAGES, siteinfo=False).replace(' xml:lang="en"', ""),
                    encoding="utf-8")
    args = ["build", str(wikis["en"]), str(bare), "--local-entities", "--until", "pages"]
    assert main(args + ["--out", str(tmp_path / "c")]) == 1
    assert (f"{bare}: the dump names no language (no <siteinfo> dbname, no xml:lang); a build "
            "of several dumps needs each dump's language: give --language with one code per "
            "dump, in their order" in capsys.readouterr().err)
    assert main(args + ["--out", str(tmp_path / "d"), "--language", "en", "bg"]) == 0
    stages = json.loads((tmp_path / "d" / schema.MANIFEST_FILE).read_text())["stages"]
    assert [entry["language"] for entry in stages["pages"]["languages"]] == ["en", "bg"]


@pytest.mark.parametrize("flags, message", [
    (["--wikidata-ids", "{en_props}"], "--wikidata-ids needs one page_props dump per dump, in "
                                       "the same order: 1 for 2 dumps"),
    ([], "several dumps need --wikidata-ids (one entity per Wikidata item across languages), "
         "or --local-entities for entities of each language alone"),
    (["--local-entities", "--min-languages", "2"], "--min-languages counts the languages of a "
                                                   "Wikidata item: give --wikidata-ids"),
    (["--local-entities", "--language", "en"], "--language needs one language per dump, in the "
                                               "order of the dumps: 1 for 2 dumps"),
])
def test_options_that_do_not_fit_several_dumps_are_named(wikis, tmp_path, capsys, flags,
                                                         message):
    from corpus.cli import main

    flags = [flag.format(**{k: str(v) for k, v in wikis.items()}) for flag in flags]
    code = main(["build", str(wikis["en"]), str(wikis["bg"]), "--out", str(tmp_path / "c"),
                 *flags])
    assert code == 1 and message in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_a_file_that_is_no_page_props_dump_is_named(wikis, tmp_path, capsys):
    from corpus.cli import main

    code = main(["build", str(wikis["en"]), str(wikis["bg"]), "--out", str(tmp_path / "c"),
                 "--wikidata-ids", str(wikis["en"]), str(wikis["bg_props"])])
    assert code == 1
    assert (f"{wikis['en']}: not a page_props dump (no `page_props` table in it)"
            in capsys.readouterr().err)


# ---------------------------------------------------------------- training on two languages

@pytest.mark.slow
def test_training_reports_each_language_and_resumes_exactly(two_languages, tmp_path):
    """Languages drawn by size ** 0.7, validation per language in metrics.jsonl and the
    plot, and a run stopped by SIGTERM and resumed reads the same batches as one that was not."""
    from pretrain import run_layout
    from pretrain.plot import plot_runs
    from train_helpers import (interrupt_after, metrics_lines, run_command, single_command,
                               train_args, train_losses)

    def args(run):
        return train_args(two_languages, run, "--max-steps", "8", "--save-every", "2",
                          "train.eval_every=4", "train.micro_batch_size=2")

    straight = run_command(single_command(args(tmp_path / "straight")))
    assert straight.returncode == 0, straight.stderr[-3000:]
    validation = [r for r in metrics_lines(tmp_path / "straight") if r["kind"] == "validation"]
    assert [r["step"] for r in validation] == [4, 8]
    for record in validation:
        assert set(record["languages"]) == {"en", "bg"}
        for fields in record["languages"].values():
            assert 0 <= fields["word_accuracy"] <= 1 and fields["loss"] > 0
    assert "bg/word_accuracy" in straight.stdout + straight.stderr      # the evaluation line
    figure = plot_runs([tmp_path / "straight"])
    labels = {line.get_label() for ax in figure.axes for line in ax.get_lines()}
    assert {"straight en", "straight bg"} <= labels

    resumed = tmp_path / "resumed"
    stopped = interrupt_after(single_command(args(resumed)), resumed, steps=3)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert run_layout.latest_step(resumed) < 8
    again = run_command(single_command(args(resumed) + ["--resume"]))
    assert again.returncode == 0, again.stderr[-3000:]
    expected, got = train_losses(tmp_path / "straight"), train_losses(resumed)
    assert sorted(got) == list(range(1, 9))
    assert all(got[step] == pytest.approx(expected[step], rel=1e-5) for step in expected)

    # The export's entity_vocab.json, through MLukeTokenizer: both keys of Tokyo, one id.
    from transformers import AutoTokenizer

    exported = run_command([str(Path(sys.executable).parent / "luke-export"),
                            str(tmp_path / "straight"), "--out", str(tmp_path / "hf")])
    assert exported.returncode == 0, exported.stderr[-3000:]
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert type(tokenizer).__name__ == "MLukeTokenizer"
    ids = [tokenizer(text, entities=[key], entity_spans=[(0, 5)])["entity_ids"]
           for text, key in (("Tokyo is big.", "en:Tokyo"), ("Токио е голям.", "bg:Токио"))]
    assert ids == [[4], [4]]
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "2 languages: en, bg; entities keyed `<lang>:<title>`" in card
    assert "bg/word_accuracy" in card


README_MARK = "<!-- recipe: several languages -->"


@pytest.mark.slow
def test_the_readme_recipe_runs_as_written(tmp_path):
    """The README's block for several languages, word for word but for its work directory:
    the bundled English and Bulgarian samples with their page_props dumps, trained and
    exported; then what the section promises of the result."""
    import os
    import subprocess
    import sys

    from transformers import AutoTokenizer

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    script = readme.split(README_MARK, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert "W=/tmp/luke-multilingual" in script
    script = script.replace("W=/tmp/luke-multilingual", f"W={tmp_path}/w")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LUKE_PROGRESS": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                          text=True, cwd=root, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    work = tmp_path / "w"
    stages = json.loads((work / "corpus" / schema.MANIFEST_FILE).read_text())["stages"]
    assert [entry["language"] for entry in stages["pages"]["languages"]] == ["en", "bg"]
    # The one item linked in the samples (the Prison Break list links to itself), the rest
    # local entities of their language.
    assert stages["entity_vocab"]["counts"]["items"] == 1
    tokenizer = AutoTokenizer.from_pretrained(str(work / "hf"))
    vocab = tokenizer.entity_vocab
    assert "en:List of Prison Break characters" in vocab and "bg:Високосна година" in vocab
    printed = done.stdout.splitlines()[-2:]
    assert printed == [f"en:Pakistan [{vocab['en:Pakistan']}]",
                       f"bg:Високосна година [{vocab['bg:Високосна година']}]"]
    # inspect --stats: a row per language, with its articles
    assert re.search(r"^\s+en\s+5\s", done.stdout, re.M)
    assert re.search(r"^\s+bg\s+1\s", done.stdout, re.M)


def test_an_interrupted_build_keeps_the_dumps_it_finished(wikis, tmp_path, monkeypatch):
    """Ctrl-C while the second dump is read: the first dump's part is kept, and the rerun
    reads only the second."""
    from corpus import pages_stage

    read = []
    real = pages_stage.dump_pages

    def interrupted_once(entry, ctx, out, *rest):
        read.append(entry.language)
        if read == ["en", "bg"]:
            raise KeyboardInterrupt
        return real(entry, ctx, out, *rest)

    monkeypatch.setattr(pages_stage, "dump_pages", interrupted_once)
    options = BuildOptions(**{**BUILD, "out": tmp_path / "c", "dumps": (wikis["en"], wikis["bg"]),
                              "wikidata_ids": (wikis["en_props"], wikis["bg_props"])})
    with pytest.raises(KeyboardInterrupt):
        build(options, until="pages")
    assert (tmp_path / "c" / ".pages-parts" / "000-en" / "part.json").is_file()
    build(options, until="pages")
    assert read == ["en", "bg", "bg"]
    assert not (tmp_path / "c" / ".pages-parts").exists()
    stages = json.loads((tmp_path / "c" / schema.MANIFEST_FILE).read_text())["stages"]
    assert [e["counts"]["articles"] for e in stages["pages"]["languages"]] == [6, 4]
