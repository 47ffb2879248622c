"""Where a benchmark keeps its figures: a JSON record and its Markdown table, side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save(folder: Path, stem: str, record: dict[str, Any], table: str) -> None:
    """Write `record` to folder/stem.json and `table` to folder/stem.md, making the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    (folder / f"{stem}.md").write_text(table)
