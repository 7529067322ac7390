"""Write one benchmark's block into ``benchmarks/RESULTS.md`` between its ``<!-- name:start/end -->``
markers (or append it under ``heading`` the first time), leaving the rest of the file as it is."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_block(name: str, body: str, heading: str, path: Path = RESULTS) -> Path:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body}\n{end}"
    text = path.read_text() if path.is_file() else "# Benchmark results\n\n"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + block + "\n"
    path.write_text(text)
    return path
