#!/usr/bin/env python3
"""The documentation's relative links, checked without a build: the same check as tests/it/docs.rs.

Reads README.md, every *.md under docs/ and bench/README.md; every relative Markdown link `[text](path)` or
`[text](path#anchor)` outside code (fenced blocks and `inline code`) must name a file that exists relative to
the linking file, and an anchor one of the target's headings, by GitHub's slug rules (lowercase; characters
other than letters, digits, spaces, hyphens and underscores removed; spaces to hyphens; a repeated heading
gets -1, -2, ...). `#anchor` alone is a heading of the same file. http(s): and mailto: links are not checked.
README.md must be at most 20,000 bytes, with no line over 400 characters.

    python3 scripts/check-docs-links.py     # exit 0 when every link resolves, 1 with the list of broken ones
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_MAX_BYTES = 20_000
README_MAX_LINE_CHARS = 400


def doc_files():
    files = [os.path.join(REPO, "README.md")]
    for root, dirs, names in os.walk(os.path.join(REPO, "docs")):
        dirs.sort()
        files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".md")]
    files.append(os.path.join(REPO, "bench", "README.md"))
    return files


def prose_lines(text):
    """The lines outside fenced code blocks, as they are (for headings)."""
    fenced = False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def without_code_spans(line):
    """The line with the text of its inline code spans removed (the backticks stay)."""
    parts = line.split("`")
    return "`".join("" if i % 2 == 1 and i < len(parts) - 1 else p for i, p in enumerate(parts))


def slug(heading):
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def anchors(text):
    seen = {}
    out = set()
    for line in prose_lines(text):
        hashes = len(line) - len(line.lstrip("#"))
        if 1 <= hashes <= 6 and line[hashes:hashes + 1] == " ":
            base = slug(line[hashes:].strip())
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(text):
    """Every link target outside code, with its 1-based line number."""
    number = 0
    fenced = False
    for line in text.split("\n"):
        number += 1
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        rest = without_code_spans(line)
        while "](" in rest:
            rest = rest[rest.index("](") + 2:]
            if ")" not in rest:
                break
            target = rest[:rest.index(")")].strip()
            target = target.split()[0] if target else target
            yield number, target


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def file_anchors(path):
    try:
        return anchors(read(path))
    except (OSError, UnicodeDecodeError):
        return set()


def main():
    checked = 0
    broken = []
    for path in doc_files():
        text = read(path)
        shown = os.path.relpath(path, REPO)
        for number, target in links(text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            checked += 1
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if not file_part and not anchor:
                broken.append(f"{shown}:{number}: ({target}): empty link")
            elif not os.path.exists(dest):
                broken.append(f"{shown}:{number}: ({target}): {os.path.relpath(dest, REPO)} does not exist")
            elif anchor and not (os.path.isfile(dest) and anchor in file_anchors(dest)):
                broken.append(f"{shown}:{number}: ({target}): no heading #{anchor} in {os.path.relpath(dest, REPO)}")
    readme = os.path.join(REPO, "README.md")
    size = os.path.getsize(readme)
    if size > README_MAX_BYTES:
        broken.append(f"README.md: {size} bytes, more than {README_MAX_BYTES}")
    for number, line in enumerate(read(readme).split("\n"), 1):
        if len(line) > README_MAX_LINE_CHARS:
            broken.append(f"README.md:{number}: {len(line)} characters, more than {README_MAX_LINE_CHARS}")
    print(f"docs links: {checked} relative links checked")
    if checked == 0:
        broken.append("no relative link found in the docs: the link parser is broken")
    if broken:
        print(f"{len(broken)} broken:\n" + "\n".join(broken), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
