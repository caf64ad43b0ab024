"""Renderers: data in (a Trace, analysis frames, a BenchView), text, bytes,
a matplotlib figure or a Document out.  Writing files is the CLI's job
(giltrace/cli/): a renderer never opens one (docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict


@dataclass
class Document:
    """A rendered file and the files that go beside it: ``attachments`` maps
    a path relative to the document's directory to its bytes (the PNGs of an
    HTML report, also embedded in it so the HTML stands alone)."""

    text: str
    attachments: Dict[str, bytes] = field(default_factory=dict)
