"""LaTeX in markdown cells -> MathML, so that an exported notebook shows its equations offline.

nbconvert's HTML page typesets `$...$` / `$$...$$` with MathJax loaded from a CDN: offline (no network
here, reports opened later) the raw TeX shows. Browsers render MathML themselves, so the export converts
each formula with `latex2mathml` beforehand. Code spans and fenced code blocks are left alone, as is an
escaped `\\$`; a formula that does not convert stays as TeX (the page still reads).
"""

from __future__ import annotations

import re

__all__ = ["markdown_math_to_mathml", "notebook_math_to_mathml"]

_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)                  # fenced blocks, then inline code spans
_BLOCK = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<![\s\\])\$(?!\$)")


def _convert(tex: str, display: str) -> str | None:
    try:
        from latex2mathml.converter import convert
    except ImportError:  # not installed: keep the TeX
        return None
    try:
        return convert(tex.strip(), display=display)
    except Exception:  # noqa: BLE001 - an unsupported command: keep the TeX
        return None


def markdown_math_to_mathml(source: str) -> str:
    """`source` with $$...$$ (block) and $...$ (inline) formulas replaced by MathML, code left untouched."""
    parts = _CODE.split(source)
    for i in range(0, len(parts), 2):               # even parts are outside code
        text = _BLOCK.sub(lambda m: _convert(m.group(1), "block") or m.group(0), parts[i])
        parts[i] = _INLINE.sub(lambda m: _convert(m.group(1), "inline") or m.group(0), text)
    return "".join(parts)


def notebook_math_to_mathml(nb) -> int:
    """Convert the formulas of every markdown cell of `nb` in place; returns the number of cells changed."""
    changed = 0
    for cell in nb.cells:
        if cell.get("cell_type") == "markdown":
            new = markdown_math_to_mathml(cell.source)
            if new != cell.source:
                cell.source = new
                changed += 1
    return changed
