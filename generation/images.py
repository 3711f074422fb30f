"""PNG encoding with provenance text chunks. Pillow only: safe to import anywhere."""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo


def encode_png(image: PILImage.Image, *, provenance: dict[str, Any]) -> bytes:
    """The image as PNG bytes, carrying who made it and how, marked as AI-generated."""
    info = PngInfo()
    info.add_text("Software", "Atelier")
    info.add_text("ai-generated", "true")
    for key, value in provenance.items():
        info.add_text(key, value if isinstance(value, str) else json.dumps(value))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()
