"""Checks for uploaded photos: decoded content, not names or headers, decides.

A photo is accepted when Pillow decodes it fully as PNG, JPEG or WebP within the byte and
pixel limits. What is kept is the pixels alone, re-encoded as PNG: EXIF, GPS and any
other metadata are dropped, after applying the EXIF orientation so the photo stays upright.
"""

from __future__ import annotations

import hashlib
import io
import warnings

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError
from rest_framework import serializers

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")


def _too_large() -> str:
    return _("The file is larger than %(megabytes)d MB.") % {
        "megabytes": settings.UPLOAD_MAX_BYTES // 1_000_000
    }


def upload_decode(upload: UploadedFile) -> PILImage.Image:
    """The upload as a clean RGB image, or a ValidationError saying what is wrong."""
    _, image = upload_read(upload)
    upright = ImageOps.exif_transpose(image).convert("RGB")
    clean = PILImage.new("RGB", upright.size)
    clean.paste(upright)
    return clean


def upload_read(upload: UploadedFile) -> tuple[bytes, PILImage.Image]:
    """The upload's bytes and the image they decode to (PNG, JPEG or WebP, fully decoded
    within the limits), or a ValidationError saying what is wrong."""
    data = _upload_bytes(upload)
    image = _decoded(
        data, formats=ALLOWED_FORMATS, unknown=_("The file is not a PNG, JPEG or WebP image.")
    )
    return data, image


def mask_decode(upload: UploadedFile, *, size: tuple[int, int]) -> PILImage.Image:
    """An edit's mask as OpenAI defines it: a PNG of the photo's size whose fully transparent
    pixels (alpha 0) mark what to repaint. Returned as a black-and-white picture, white where
    the model repaints; a ValidationError says what is wrong."""
    mask = _decoded(
        _upload_bytes(upload), formats=("PNG",), unknown=_("The mask is not a PNG image.")
    )
    if mask.size != size:
        raise serializers.ValidationError(
            _("The mask is %(mask)s pixels; it must be the size of the image, %(image)s.")
            % {"mask": "x".join(map(str, mask.size)), "image": "x".join(map(str, size))}
        )
    if not mask.has_transparency_data:
        raise serializers.ValidationError(
            _(
                "The mask has no alpha channel: its fully transparent pixels mark the area to "
                "repaint."
            )
        )
    alpha = mask.convert("RGBA").getchannel("A")
    return alpha.point(lambda value: 255 if value == 0 else 0)


def _upload_bytes(upload: UploadedFile) -> bytes:
    """The upload's bytes, at most UPLOAD_MAX_BYTES of them (a ValidationError beyond)."""
    if upload.size is not None and upload.size > settings.UPLOAD_MAX_BYTES:
        raise serializers.ValidationError(_too_large())
    data = upload.read(settings.UPLOAD_MAX_BYTES + 1)
    if len(data) > settings.UPLOAD_MAX_BYTES:
        raise serializers.ValidationError(_too_large())
    return data


def _decoded(data: bytes, *, formats: tuple[str, ...], unknown: str) -> PILImage.Image:
    """`data` fully decoded as one of `formats` within the pixel limit, or a ValidationError
    (`unknown` when it is none of them)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            image = PILImage.open(io.BytesIO(data), formats=formats)
            if image.width * image.height > settings.UPLOAD_MAX_PIXELS:
                raise serializers.ValidationError(
                    _("The image has more than %(pixels)s pixels.")
                    % {"pixels": number_format(settings.UPLOAD_MAX_PIXELS, force_grouping=True)}
                )
            image.load()
    except UnidentifiedImageError:
        raise serializers.ValidationError(unknown) from None
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise serializers.ValidationError(_("The image has too many pixels.")) from None
    except (OSError, SyntaxError, ValueError):
        raise serializers.ValidationError(_("The image is truncated or corrupt.")) from None
    return image


def fit_size(
    image: PILImage.Image, *, max_width: int, max_height: int, minimum: int
) -> tuple[int, int]:
    """The largest size within the limits with the image's aspect, in multiples of 8."""
    scale = min(max_width / image.width, max_height / image.height, 1.0)
    width = max(int(image.width * scale) // 8 * 8, minimum)
    height = max(int(image.height * scale) // 8 * 8, minimum)
    return width, height


def png_file(image: PILImage.Image) -> ContentFile:
    """PNG bytes named by their digest, so that equal uploads have equal names."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    return ContentFile(data, name=f"{hashlib.sha256(data).hexdigest()}.png")
