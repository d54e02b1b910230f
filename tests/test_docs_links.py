"""Every relative link in README.md and docs/*.md points to a file (and heading) that exists.

Markdown only, no jax: this runs in well under a second.
"""

from __future__ import annotations

import pathlib
import re
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parent.parent

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"(`+).*?\1")
# [text](target) and ![alt](target), with an optional "title"; the text may hold `code`.
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:name|id)\s*=\s*\"([^\"]+)\"", re.IGNORECASE)
_SKIP_SCHEMES = ("http://", "https://", "mailto:")


def doc_files(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
  return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def _prose_lines(text: str):
  """(line number, line) outside fenced code blocks, with inline code spans blanked."""
  fence = None
  for number, line in enumerate(text.splitlines(), 1):
    match = _FENCE.match(line)
    if match:
      if fence is None:
        fence = match.group(1)
      elif match.group(1) == fence:
        fence = None
      continue
    if fence is None:
      yield number, line


def slug(heading: str) -> str:
  """GitHub's anchor for a heading: lowercase, punctuation but '-' and '_' dropped, ' ' -> '-'."""
  text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text, not its target
  text = re.sub(r"<[^>]+>", "", text).strip().lower()
  text = re.sub(r"[^\w\- ]", "", text)
  return text.replace(" ", "-")


def anchors(path: pathlib.Path) -> set[str]:
  """The anchors GitHub makes for a markdown file: heading slugs (-1, -2 on repeats), <a name>."""
  found: set[str] = set()
  counts: dict[str, int] = {}
  for _, line in _prose_lines(path.read_text(encoding="utf-8")):
    found.update(_HTML_ANCHOR.findall(line))
    match = _HEADING.match(line)
    if not match:
      continue
    base = slug(match.group(2))
    count = counts.get(base, 0)
    counts[base] = count + 1
    found.add(base if count == 0 else f"{base}-{count}")
  return found


def links(path: pathlib.Path):
  """(line number, target) of every link in the file's prose."""
  for number, line in _prose_lines(path.read_text(encoding="utf-8")):
    for target in _LINK.findall(_INLINE_CODE.sub("", line)):
      yield number, target


def broken_links(files, root: pathlib.Path = ROOT) -> list[str]:
  """'file:line: target: why' for every relative link that does not resolve."""
  root = root.resolve()
  problems = []
  for path in files:
    where = path.relative_to(root)
    for number, target in links(path):
      if target.lower().startswith(_SKIP_SCHEMES):
        continue
      if not target:
        problems.append(f"{where}:{number}: empty link target")
        continue
      file_part, _, anchor = target.partition("#")
      dest = (path.parent / urllib.parse.unquote(file_part)).resolve() if file_part else path
      if root not in dest.parents and dest != root:
        problems.append(f"{where}:{number}: {target}: points outside the repository")
      elif not dest.exists():
        problems.append(f"{where}:{number}: {target}: no such file {dest.relative_to(root)}")
      elif anchor:
        if dest.is_dir() or dest.suffix.lower() != ".md":
          problems.append(f"{where}:{number}: {target}: an anchor into a file that is not markdown")
        elif urllib.parse.unquote(anchor).lower() not in anchors(dest):
          problems.append(f"{where}:{number}: {target}: {dest.relative_to(root)} has no heading "
                          f"with anchor '#{anchor}'")
  return problems


def test_every_relative_link_resolves():
  files = doc_files()
  assert (ROOT / "README.md") in files and len(files) > 1, files
  assert sum(1 for path in files for _ in links(path)) > 10  # the scan really sees the links
  problems = broken_links(files)
  assert not problems, "broken links:\n" + "\n".join(problems)


def test_every_docs_page_is_linked_from_the_readme():
  linked = {(ROOT / urllib.parse.unquote(target.partition("#")[0])).resolve()
            for _, target in links(ROOT / "README.md")}
  orphans = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
  assert not orphans, f"docs pages that README.md does not link: {orphans}"


def test_slug_follows_github():
  assert slug("Quick start") == "quick-start"
  assert (slug("Training: the shared trainer (topics 1–3)")
          == "training-the-shared-trainer-topics-13")
  assert slug("Similarity search (`ycng_jax.search`)") == "similarity-search-ycng_jaxsearch"
  assert slug("The `ycng` command") == "the-ycng-command"
  assert slug("See [runs](docs/runs.md) now") == "see-runs-now"
  assert slug("GPU: one H200") == "gpu-one-h200"


def test_broken_links_are_reported(tmp_path):
  (tmp_path / "docs").mkdir()
  (tmp_path / "docs" / "page.md").write_text("# Page\n\n## A section\n\n## A section\n",
                                             encoding="utf-8")
  (tmp_path / "README.md").write_text(
      "# Title\n\n"
      "[ok](docs/page.md) [ok](docs/page.md#a-section) [ok](docs/page.md#a-section-1)\n"
      "[ok](#title) [web](https://example.com/x.md) [mail](mailto:a@b.c)\n"
      "```\n[in code](missing-in-fence.md)\n```\n"
      "`[inline](missing-inline.md)`\n"
      "[gone](docs/missing.md)\n"
      "[bad anchor](docs/page.md#no-such-section)\n"
      "[here](#nowhere)\n", encoding="utf-8")
  problems = broken_links(doc_files(tmp_path), root=tmp_path)
  assert len(problems) == 3, problems
  assert "README.md:9: docs/missing.md: no such file" in problems[0]
  assert "README.md:10: docs/page.md#no-such-section" in problems[1]
  assert "README.md:11: #nowhere" in problems[2]
