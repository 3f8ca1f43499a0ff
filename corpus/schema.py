"""The on-disk contract of a corpus build: directory names, dataset columns, manifest keys.

Every stage of `luke-corpus build` (declared in corpus/stages.py) writes into one output
directory DIR; everything that consumes a build reads it through corpus/reader.py, which reads
the names here. Changing a name or a column here is a schema change: bump SCHEMA_VERSION so
that older builds are refused instead of misread.

DIR/
  manifest.json          one JSON object, see below
  pages/                 datasets.Dataset, one row per namespace-0 article (PAGE_COLUMNS)
  redirects.tsv          "source<TAB>final target" per line, titles normalized, chains resolved
                         (each title written "language:title" in a build of several dumps)
  entity_vocab/          entity_vocab.json (transformers format: key -> id, the key a title or
                         "language:title", see stages.entity_vocab.keys) and counts.jsonl
  tokenizer/             a directory that transformers.AutoTokenizer loads (MLukeTokenizer, or
                         LukeTokenizer for a RoBERTa-family base model)
  examples/              datasets.Dataset saved with several shards (EXAMPLE_COLUMNS)
  validation/            same columns, built from held-out pages only

manifest.json:
  {"schema_version": SCHEMA_VERSION,
   "stages": {"pages": {...}, "entity_vocab": {...}, "tokenizer": {...}, "examples": {...}}}
Each stage section holds at least "options" (the options it depended on), "fingerprint"
(a hex digest that changes when its output changes) and "counts" (a flat dict of integers).
corpus/reader.py reads these keys (written by the stages named):
  stages.pages.languages[]: language, dump, siteinfo.dbname, rows, id_offset, counts,
                            language_rules; stages.pages.truncated, .counts
  stages.entity_vocab.size, .keys
  stages.tokenizer.vocab_size, .pad_token_id, .bos_token_id, .eos_token_id, .mask_token_id,
                   .kind, .word_start_marker, .base_model, counts.training_* (the sample a
                   trained tokenizer learnt from: pages, lines, characters, whether capped)
  stages.examples.num_examples, .validation_examples, .fingerprint, options (the packing
                  limits), .languages[]: language, locale, rows, validation_rows,
                  validation_page_ids, counts
and every stage's fingerprint. The languages are listed in the order of the build's dumps; a
build of one dump lists one.
"""

SCHEMA_VERSION = 3

MANIFEST_FILE = "manifest.json"
PAGES_DIR = "pages"
REDIRECTS_FILE = "redirects.tsv"
ENTITY_VOCAB_DIR = "entity_vocab"
ENTITY_VOCAB_FILE = "entity_vocab.json"  # inside ENTITY_VOCAB_DIR, and inside TOKENIZER_DIR
ENTITY_COUNTS_FILE = "counts.jsonl"      # {"id", "entities": [[title, lang]], "count"} per line
TOKENIZER_DIR = "tokenizer"
EXAMPLES_DIR = "examples"
VALIDATION_DIR = "validation"

# pages/: character offsets are Python str indices into `text`, end exclusive. Paragraphs are
# separated by "\n". `link_target` is the normalized title after redirect resolution. The rows
# of each language lie together, in the order of the build's dumps (manifest: stages.pages
# .languages[].rows). `id` is the page's id in its wiki plus PAGE_ID_STRIDE times its language's
# position among them, so that ids stay unique in a build of several wikis (a build of one dump
# holds the wiki's own ids).
PAGE_COLUMNS = ("id", "title", "text", "link_start", "link_end", "link_target")
PAGE_ID_STRIDE = 10**10          # above every wiki's page ids (English Wikipedia's are < 10**9)

# examples/ and validation/: `word_ids` is exactly what the exported tokenizer gives for the
# sequence's text, <s> and </s> included. `entity_start`/`entity_end` are token positions in
# `word_ids` (end exclusive), one per entry of `entity_ids`.
EXAMPLE_COLUMNS = ("word_ids", "entity_ids", "entity_start", "entity_end", "page_id")

# Entity vocabulary ids are fixed: specials first, then titles by descending link count.
ENTITY_SPECIALS = ("[PAD]", "[UNK]", "[MASK]", "[MASK2]")
ENTITY_PAD_ID, ENTITY_UNK_ID, ENTITY_MASK_ID, ENTITY_MASK2_ID = range(4)

