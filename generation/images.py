"""Image encoding with provenance: PNG text chunks, or XMP and EXIF for JPEG and WebP.

Pillow only: safe to import anywhere. `encode_image` is the one place where a rendered
picture becomes the bytes that are stored and served; whatever is added on top of the
encoded bytes (signing, watermarks) builds on it.
"""

from __future__ import annotations

import io
import json
from typing import Any
from xml.sax.saxutils import quoteattr

from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

# output_format -> (Pillow's format name, MIME type, file extension)
OUTPUT_FORMATS: dict[str, tuple[str, str, str]] = {
    "png": ("PNG", "image/png", "png"),
    "jpeg": ("JPEG", "image/jpeg", "jpg"),
    "webp": ("WEBP", "image/webp", "webp"),
}
DEFAULT_OUTPUT_FORMAT = "png"
DEFAULT_QUALITY = 100  # OpenAI's default output_compression: the best quality
# The IPTC digital source type of a picture made by a generative model.
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
XMP_NAMESPACE = "https://atelier.dev/ns/provenance/1.0/"
EXIF_IMAGE_DESCRIPTION = 0x010E
EXIF_SOFTWARE = 0x0131


def mime_type(output_format: str) -> str:
    return OUTPUT_FORMATS[output_format][1]


def file_extension(output_format: str) -> str:
    return OUTPUT_FORMATS[output_format][2]


def mime_type_of_name(name: str) -> str:
    """The MIME type of a stored image, from its file name (PNG for older names)."""
    extension = name.rsplit(".", 1)[-1].lower()
    for _pillow, mime, known in OUTPUT_FORMATS.values():
        if extension == known:
            return mime
    return "image/png"


def provenance_text(provenance: dict[str, Any]) -> dict[str, str]:
    """Every provenance field as text, with the two marks every format carries."""
    text = {"Software": "Atelier", "ai-generated": "true"}
    for key, value in provenance.items():
        text[key] = value if isinstance(value, str) else json.dumps(value)
    return text


def encode_png(image: PILImage.Image, *, provenance: dict[str, Any]) -> bytes:
    """The image as PNG bytes, carrying who made it and how, marked as AI-generated."""
    info = PngInfo()
    for key, value in provenance_text(provenance).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def provenance_xmp(provenance: dict[str, Any]) -> bytes:
    """An XMP packet with each provenance field (atelier:<field>) and IPTC's digital source
    type for AI-generated media, which readers of JPEG and WebP metadata understand."""
    fields = "".join(
        f"\n   atelier:{key.replace('-', '_')}={quoteattr(value)}"
        for key, value in provenance_text(provenance).items()
    )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '   xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        f'   xmlns:atelier="{XMP_NAMESPACE}"\n'
        f'   Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"{fields}/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def provenance_exif(provenance: dict[str, Any]) -> PILImage.Exif:
    """EXIF with the software and, as the image description, the provenance as JSON."""
    exif = PILImage.Exif()
    exif[EXIF_SOFTWARE] = "Atelier"
    exif[EXIF_IMAGE_DESCRIPTION] = json.dumps(provenance_text(provenance), ensure_ascii=True)
    return exif


def encode_image(
    image: PILImage.Image,
    *,
    output_format: str = DEFAULT_OUTPUT_FORMAT,
    quality: int | None = None,
    provenance: dict[str, Any],
) -> bytes:
    """The image in `output_format` (png, jpeg or webp), carrying its provenance.

    `quality` (0-100, OpenAI's output_compression; default 100) sets the JPEG and WebP
    encoders' quality; PNG is lossless and ignores it. PNG carries the provenance as text
    chunks; JPEG and WebP as XMP (with IPTC's AI-generated source type) and EXIF.
    """
    if output_format == "png":
        return encode_png(image, provenance=provenance)
    pillow_format = OUTPUT_FORMATS[output_format][0]
    buffer = io.BytesIO()
    image.convert("RGB").save(
        buffer,
        format=pillow_format,
        quality=DEFAULT_QUALITY if quality is None else quality,
        xmp=provenance_xmp(provenance),
        exif=provenance_exif(provenance),
    )
    return buffer.getvalue()
