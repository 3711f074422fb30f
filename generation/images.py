"""Image encoding with provenance: PNG text chunks, or XMP and EXIF for JPEG and WebP.

Pillow and fpng only: safe to import anywhere. `encode_image` is the one place where a
rendered picture becomes the bytes that are stored and served; whatever is added on top of
the encoded bytes (signing, watermarks) builds on it.

The worker writes every image it makes, so this is on the path of each one: at 145 images
per second a GPU would need about twelve CPU cores for Pillow's default PNG encoder (see
the README's encoder table). fpng writes a valid PNG of the same pixels about 40 times
faster, with files about an eighth larger than Pillow's default level; Pillow stays as the
choice for smaller files (GENERATION_PNG_ENCODER=pillow). WebP is written with method 0,
five to six times faster than Pillow's default for about 5% more bytes; JPEG is fast as is.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from typing import Any
from xml.sax.saxutils import quoteattr

import fpng
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
WEBP_METHOD = 0  # the fastest of libwebp's effort levels (Pillow's default is 4)
PNG_ENCODERS = ("fpng", "pillow")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR_END = len(PNG_SIGNATURE) + 4 + 4 + 13 + 4  # length, type, 13 bytes of data, CRC


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


def encode_png(
    image: PILImage.Image,
    *,
    provenance: dict[str, Any],
    encoder: str = "fpng",
    compress_level: int = 6,
) -> bytes:
    """The image as PNG bytes, carrying who made it and how, marked as AI-generated.

    Both encoders write the same text chunks, in the same order, right after the header;
    a reader sees the same pixels and the same text either way. `compress_level` is
    Pillow's (fpng has one level).
    """
    text = provenance_text(provenance)
    if encoder == "pillow":
        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=info, compress_level=compress_level)
        return buffer.getvalue()
    if encoder != "fpng":
        raise ValueError(f"Unknown PNG encoder {encoder!r}: one of {', '.join(PNG_ENCODERS)}")
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    png = fpng.from_pil(image)
    if png[12:16] != b"IHDR":  # fpng always starts with its header; never write a bad file
        raise ValueError("fpng wrote no PNG header")
    chunks = b"".join(_text_chunk(key, value) for key, value in text.items())
    return png[:_IHDR_END] + chunks + png[_IHDR_END:]


def _text_chunk(key: str, value: str) -> bytes:
    """A tEXt chunk, or an uncompressed iTXt one for text beyond Latin-1, as Pillow writes."""
    try:
        kind, data = b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")
    except UnicodeEncodeError:
        kind, data = b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


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
    png_encoder: str = "fpng",
    png_compress_level: int = 6,
) -> bytes:
    """The image in `output_format` (png, jpeg or webp), carrying its provenance.

    `quality` (0-100, OpenAI's output_compression; default 100) sets the JPEG and WebP
    encoders' quality; PNG is lossless and ignores it. PNG carries the provenance as text
    chunks; JPEG and WebP as XMP (with IPTC's AI-generated source type) and EXIF.
    """
    if output_format == "png":
        return encode_png(
            image, provenance=provenance, encoder=png_encoder, compress_level=png_compress_level
        )
    pillow_format = OUTPUT_FORMATS[output_format][0]
    options = {"method": WEBP_METHOD} if pillow_format == "WEBP" else {}
    buffer = io.BytesIO()
    image.convert("RGB").save(
        buffer,
        format=pillow_format,
        quality=DEFAULT_QUALITY if quality is None else quality,
        xmp=provenance_xmp(provenance),
        exif=provenance_exif(provenance),
        **options,
    )
    return buffer.getvalue()
