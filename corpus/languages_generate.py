"""Regenerate corpus/data/mediawiki_languages.json from a MediaWiki source tree.

    python -m corpus.languages_generate /path/to/mediawiki corpus/data/mediawiki_languages.json \
        --origin "the release tarball of MediaWiki 1.39.17"

A developer's tool, not part of a build: it needs `php` (php-cli) on PATH, because the facts live
in PHP files and PHP itself is the only faithful reader of them (string escapes, concatenated
pieces, constants). A small PHP program, written out below, loads each
`languages/messages/Messages*.php` in its own scope and prints its `$fallback`, `$linkTrail`,
`$namespaceNames`, `$namespaceAliases` and `$namespaceGenderAliases` as JSON; it also asks each
language converter a wiki uses by default (LanguageConverterFactory's list; the classes in
`includes/language/converters/`, on small stand-ins for the base classes they extend) for its
variants, variant fallbacks, manual levels, flags and the separators and names its
`-{D|...}-` descriptions use. This module then turns every PHP
link-trail regex into a Python one and checks the two agree, character by character, before
writing the table (corpus/languages.py reads it).

Link trails: MediaWiki applies `$linkTrail`, a PCRE of the form `/^(TRAIL)(.*)$/sD[u]`, to the
text right after `]]`; group 1 joins the link. The table keeps TRAIL as a Python regular
expression beside the PHP original: the syntax the trails use means the same in both but for
PCRE's `\\x{HHHH}`, which becomes Python's `\\uHHHH`, and check_trails proves the two agree
before anything is written. A trail without the `u` flag must be ASCII (PCRE would read it
byte by byte otherwise) and no trail may use other flags; the tool refuses anything else
rather than guess.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# Loads every Messages*.php and converter class; prints one JSON object.
_PHP_READER = r"""<?php
define( 'MEDIAWIKI', 1 );
$mw = $argv[1];
preg_match_all( "/define\(\s*'(NS_[A-Z_]+)',\s*(-?\d+)\s*\)/",
	file_get_contents( "$mw/includes/Defines.php" ), $m, PREG_SET_ORDER );
foreach ( $m as $d ) { define( $d[1], (int)$d[2] ); }

function read_messages( $file ) {
	$fallback = $linkTrail = $namespaceNames = $namespaceAliases = null;
	$namespaceGenderAliases = null;
	require $file;
	return [ 'fallback' => $fallback, 'linkTrail' => $linkTrail,
		'namespaceNames' => $namespaceNames, 'namespaceAliases' => $namespaceAliases,
		'namespaceGenderAliases' => $namespaceGenderAliases ];
}
$languages = [];
foreach ( glob( "$mw/languages/messages/Messages*.php" ) as $file ) {
	$code = strtolower( str_replace( '_', '-', substr( basename( $file, '.php' ), 8 ) ) );
	$languages[$code] = read_messages( $file );
}
$jsonCodes = [];
foreach ( glob( "$mw/languages/i18n/*.json" ) as $file ) {
	$jsonCodes[] = basename( $file, '.json' );
}

// Stand-ins for the classes the converters extend: only the plain-data methods are called.
require "$mw/includes/language/LanguageCode.php";
require "$mw/includes/languages/data/Names.php";
abstract class LanguageConverter {
	public function getVariantNames(): array { return MediaWiki\Languages\Data\Names::$names; }
	protected function getAdditionalFlags(): array { return []; }
	protected function getAdditionalManualLevel(): array { return []; }
	public function getDescCodeSeparator(): string { return ':'; }
	public function getDescVarSeparator(): string { return ';'; }
}
abstract class LanguageConverterSpecific extends LanguageConverter {}
abstract class LanguageConverterIcu extends LanguageConverterSpecific {}
function call( $object, $name ) {
	$method = new ReflectionMethod( $object, $name );
	$method->setAccessible( true );
	return $method->invoke( $object );
}
// The converters a wiki uses by default (English's pig latin only on request).
require "$mw/includes/language/LanguageConverterFactory.php";
$factory = new ReflectionClass( 'MediaWiki\\Languages\\LanguageConverterFactory' );
$converters = [];
foreach ( $factory->getDefaultProperties()['converterList'] as $spec ) {
	$class = $spec['class'];
	require_once "$mw/includes/language/converters/$class.php";
	$c = ( new ReflectionClass( $class ) )->newInstanceWithoutConstructor();
	$variants = call( $c, 'getLanguageVariants' );
	$names = call( $c, 'getVariantNames' );
	$bcp47 = [];
	foreach ( $variants as $v ) { $bcp47[$v] = LanguageCode::bcp47( $v ); }
	$deprecated = [];
	foreach ( LanguageCode::getDeprecatedCodeMapping() as $old => $new ) {
		if ( in_array( $new, $variants ) ) { $deprecated[$old] = $new; }
	}
	$converters[call( $c, 'getMainCode' )] = [
		'variants' => $variants,
		'fallbacks' => call( $c, 'getVariantsFallbacks' ),
		'manual_levels' => call( $c, 'getAdditionalManualLevel' ),
		'flags' => call( $c, 'getAdditionalFlags' ),
		'desc_code_separator' => call( $c, 'getDescCodeSeparator' ),
		'desc_var_separator' => call( $c, 'getDescVarSeparator' ),
		'variant_names' => array_intersect_key( $names, array_flip( $variants ) ),
		'bcp47' => $bcp47,
		'deprecated' => $deprecated,
	];
}
preg_match( "/define\(\s*'MW_VERSION',\s*'([^']+)'/",
	file_get_contents( "$mw/includes/Defines.php" ), $version );
echo json_encode( [ 'version' => $version[1], 'languages' => $languages,
	'json_codes' => $jsonCodes, 'converters' => $converters ],
	JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES );
"""

# Matches single strings in PHP to compare its trail regexes with the Python translations.
_PHP_CHECKER = r"""<?php
$cases = json_decode( file_get_contents( $argv[1] ), true );
$out = [];
foreach ( $cases['patterns'] as $pattern ) {
	$row = [];
	foreach ( $cases['strings'] as $s ) {
		$row[] = preg_match( $pattern, $s, $m ) ? $m[1] : null;
	}
	$out[] = $row;
}
echo json_encode( $out, JSON_UNESCAPED_UNICODE );
"""

_TRAIL_FORM = re.compile(r"^/\^\((?P<trail>.*)\)\(\.\*\)\$/(?P<flags>[a-zA-Z]*)$", re.DOTALL)
_HEX_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]+)\}")


def _run_php(program: str, *args: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".php", delete=False) as f:
        f.write(program)
    try:
        done = subprocess.run(["php", f.name, *args], capture_output=True, text=True, check=False)
    finally:
        Path(f.name).unlink()
    if done.returncode != 0:
        raise SystemExit(f"php failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def python_trail(php_regex: str) -> str:
    """The Python regex of group 1 of a MediaWiki link trail (see the module docstring)."""
    m = _TRAIL_FORM.match(php_regex)
    if m is None:
        raise ValueError(f"link trail {php_regex!r} is not of the form /^(...)(.*)$/flags")
    trail, flags = m.group("trail"), m.group("flags")
    if "u" not in flags and not trail.isascii():
        raise ValueError(f"link trail {php_regex!r} is byte-wise (no u flag) but not ASCII")
    if set(flags) - set("sDu"):
        raise ValueError(f"link trail {php_regex!r} has flags this tool does not translate")
    return _HEX_ESCAPE.sub(lambda h: _python_escape(int(h.group(1), 16)), trail)


def _python_escape(code_point: int) -> str:
    return f"\\u{code_point:04x}" if code_point <= 0xFFFF else f"\\U{code_point:08x}"


def check_trails(php_regexes: list[str]) -> None:
    """Every translated trail joins exactly what PHP's joins, on every character of the patterns,
    their neighbours, ASCII and a sample of all planes, and on a few multi-character strings."""
    chars = set(range(0x20, 0x7F)) | set(range(0x80, 0x30000, 97))
    for regex in php_regexes:
        for c in regex:
            chars.update((ord(c) - 1, ord(c), ord(c) + 1))
        for h in _HEX_ESCAPE.findall(regex):
            chars.update((int(h, 16) - 1, int(h, 16), int(h, 16) + 1))
    strings = [chr(c) for c in sorted(chars) if 0 < c < 0x110000 and not 0xD800 <= c < 0xE000]
    strings += ["c'hoari", "C’Hc", "a'b", "l''x", "ab-–c", "aé", "word.", "x y", "東京都",
                "'s", "«a»", "ab\ncd", "ʻokina", "aб", "1a"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"patterns": php_regexes, "strings": strings}, f, ensure_ascii=False)
    try:
        php_results = json.loads(_run_php(_PHP_CHECKER, f.name))
    finally:
        Path(f.name).unlink()
    for regex, expected in zip(php_regexes, php_results):
        compiled = re.compile(python_trail(regex))
        for s, want in zip(strings, expected):
            got = compiled.match(s)
            got = got.group() if got else ""
            if got != (want or ""):
                raise SystemExit(f"trail {regex!r} on {s!r}: PHP joins {want!r}, Python {got!r}")


def _language_row(data: dict) -> dict:
    fallback = data["fallback"]
    row: dict = {"fallback": [c.strip() for c in fallback.split(",")] if fallback else []}
    if data["linkTrail"] is not None:
        row["link_trail"] = python_trail(data["linkTrail"])
        row["link_trail_php"] = data["linkTrail"]
    for key, name in (("namespaceNames", "namespace_names"),
                      ("namespaceAliases", "namespace_aliases"),
                      ("namespaceGenderAliases", "namespace_gender_aliases")):
        if data[key]:
            row[name] = _as_map(data[key])
    return row


def _as_map(value: dict | list) -> dict:
    """PHP arrays keyed 0..n arrive as JSON lists; the table always holds objects."""
    return dict(enumerate(value)) if isinstance(value, list) else value


def generate(mediawiki: Path, origin: str = "") -> dict:
    facts = json.loads(_run_php(_PHP_READER, str(mediawiki)))
    trails = sorted({d["linkTrail"] for d in facts["languages"].values() if d["linkTrail"]})
    check_trails(trails)
    languages = {code: _language_row(data) for code, data in sorted(facts["languages"].items())}
    return {
        "about": {
            "what": "MediaWiki's per-language parsing facts: link trails, namespace names and "
                    "aliases, fallback chains, language converters (variants)",
            "source": f"MediaWiki {facts['version']}: languages/messages/Messages*.php, "
                      f"includes/language/converters/*.php, includes/languages/data/Names.php, "
                      f"the file names of languages/i18n/*.json"
                      + (f"; {origin}" if origin else ""),
            "generated_by": "python -m corpus.languages_generate MEDIAWIKI_DIR OUT.json "
                            "--origin TEXT (reads the PHP with php-cli)",
            "link_trail": "Python regex of group 1 of the PHP $linkTrail (link_trail_php); "
                          "absent: the language defines none and inherits along its fallback",
            "license": "facts from MediaWiki (GPL-2.0-or-later), a data table generated from it",
        },
        "mediawiki_version": facts["version"],
        "languages": languages,
        "codes_without_rules": sorted(set(facts["json_codes"]) - set(languages)),
        "converters": {main: {k: _as_map(v) if k not in ("variants",) else v
                              for k, v in converter.items()}
                       for main, converter in sorted(facts["converters"].items())},
    }


def write_table(table: dict, out: Path) -> None:
    """One language per line: readable diffs when MediaWiki changes."""
    lines = ["{"]
    for key, value in table.items():
        if key == "languages":
            lines.append(f'"{key}": {{')
            rows = [f"  {json.dumps(code)}: {json.dumps(row, ensure_ascii=False, sort_keys=True)}"
                    for code, row in value.items()]
            lines.append(",\n".join(rows))
            lines.append("},")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    lines[-1] = lines[-1].rstrip(",")
    lines.append("}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mediawiki", type=Path, help="a MediaWiki source tree (its root)")
    parser.add_argument("out", type=Path, help="the JSON table to write")
    parser.add_argument("--origin", default="", metavar="TEXT",
                        help="where the MediaWiki tree came from, recorded in the table's header")
    args = parser.parse_args(argv)
    table = generate(args.mediawiki, args.origin)
    write_table(table, args.out)
    print(f"{args.out}: MediaWiki {table['mediawiki_version']}, {len(table['languages'])} "
          f"languages, {sum('link_trail' in r for r in table['languages'].values())} with "
          f"their own link trail, {len(table['converters'])} converters", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
