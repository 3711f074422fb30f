"""Where an image came from: C2PA content credentials, an invisible watermark, verification.

Every image the worker makes carries two marks, applied in generation/worker.py:

- an invisible watermark on the pixels (before encoding), whose 48-bit payload is the start
  of the image's id: it survives re-saves, format changes and resizing that metadata does
  not, and maps back to the image here without naming anyone;
- a C2PA manifest on the encoded bytes (PNG, JPEG or WebP), signed with the platform's
  certificate: created (or edited) by an AI model (IPTC digital source type
  trainedAlgorithmicMedia), which model, which platform, the image's id and, for an edit, its
  source photo as the parent ingredient.

`image_inspect` reads both back from uploaded bytes; `provenance_verify` adds what the
platform knows of the image, the job only for members of its workspace.

No torch here (web processes verify): the watermark is invisible-watermark's DWT-DCT-SVD
method, written out over numpy and OpenCV for all blocks at once (the package's __init__
imports torch, and its module works block by block in Python).
"""

from __future__ import annotations

import binascii
import functools
import io
import json
import logging
import os
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from PIL import Image as PILImage

from accounts.models import ApiKey, Membership, User
from generation.models import Image
from generation.watermark import dwt_dct_svd_embed, dwt_dct_svd_read, opencv

logger = logging.getLogger(__name__)

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IMAGE_ASSERTION = "org.atelier.image"  # this platform's assertion: platform, model, image id
MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


# --- Signing credentials -------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    chain: bytes  # PEM, the signing certificate first
    key: bytes  # PEM
    anchors: str  # PEM roots: what validates as this platform's


def local_chain_ensure(folder: Path) -> Path:
    """A local certificate chain for signing (root CA, intermediate, signer), made once.

    C2PA accepts a signing certificate that is not self-signed, carries key usage
    digitalSignature and an extended key usage such as emailProtection, and is not a CA. Two
    processes may race to make it: each writes a folder of its own, and the first rename wins.
    """
    if (folder / "chain.pem").is_file():
        return folder
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common),
                x509.NameAttribute(
                    NameOID.ORGANIZATION_NAME, f"{settings.PROVENANCE_PLATFORM} (test)"
                ),
            ]
        )

    def certificate(
        subject: x509.Name, key: Any, issuer: x509.Name, issuer_key: Any, *, ca: bool, days: int
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=ca,
                    crl_sign=ca,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        )
        if not ca:
            eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION])
            builder = builder.add_extension(eku, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    root_key, middle_key, signer_key = (ec.generate_private_key(ec.SECP256R1()) for _ in "abc")
    root = certificate(
        name("Test root CA"), root_key, name("Test root CA"), root_key, ca=True, days=3650
    )
    middle = certificate(
        name("Test intermediate CA"), middle_key, root.subject, root_key, ca=True, days=3650
    )
    signer = certificate(
        name("Test signer"), signer_key, middle.subject, middle_key, ca=False, days=3650
    )

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    folder.parent.mkdir(parents=True, exist_ok=True)
    draft = folder.parent / f".{folder.name}-{secrets.token_hex(4)}"
    draft.mkdir()
    (draft / "root.pem").write_bytes(pem(root))
    (draft / "chain.pem").write_bytes(pem(signer) + pem(middle))
    key = signer_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (draft / "key.pem").write_bytes(key)
    os.chmod(draft / "key.pem", 0o600)
    try:
        draft.rename(folder)
    except OSError:  # another process made it first: use theirs
        for path in draft.iterdir():
            path.unlink()
        draft.rmdir()
    return folder


def _last_certificate(chain: bytes) -> str:
    marker = b"-----BEGIN CERTIFICATE-----"
    return (marker + chain.split(marker)[-1]).decode()


@functools.cache
def credentials() -> Credentials:
    """The signing chain, key and trust anchors from settings, else the local test chain."""
    if settings.C2PA_SIGNING_CERT:
        chain = Path(settings.C2PA_SIGNING_CERT).read_bytes()
        key = Path(settings.C2PA_SIGNING_KEY).read_bytes()
        anchors = (
            Path(settings.C2PA_TRUST_ANCHORS).read_text()
            if settings.C2PA_TRUST_ANCHORS
            else _last_certificate(chain)
        )
        return Credentials(chain, key, anchors)
    folder = local_chain_ensure(Path(settings.C2PA_TEST_CHAIN_DIR))
    anchors = (
        Path(settings.C2PA_TRUST_ANCHORS).read_text()
        if settings.C2PA_TRUST_ANCHORS
        else (folder / "root.pem").read_text()
    )
    return Credentials(
        (folder / "chain.pem").read_bytes(), (folder / "key.pem").read_bytes(), anchors
    )


# --- C2PA manifests ------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageClaims:
    """What an image's manifest says about it (nothing about who asked for it)."""

    image_id: uuid.UUID
    model: str  # the model's public name, never a server path
    edited: bool = False


@dataclass(frozen=True)
class SourceImage:
    data: bytes
    mime: str


def model_public_name(model: str) -> str:
    """A folder's name rather than its path ("atelier-demo"), a hub id as it is."""
    if model.startswith(("/", ".", "~")) or os.path.isdir(model):
        return Path(model).name
    return model


def mime_type(data: bytes) -> str:
    """The MIME type of PNG, JPEG or WebP bytes, from their content."""
    with PILImage.open(io.BytesIO(data), formats=list(MIME_TYPES)) as image:
        return MIME_TYPES[image.format or ""]


def _manifest(claims: ImageClaims, mime: str) -> dict[str, Any]:
    platform = settings.PROVENANCE_PLATFORM
    action: dict[str, Any] = {
        "action": "c2pa.edited" if claims.edited else "c2pa.created",
        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "softwareAgent": {"name": claims.model},
        "description": f"Made with the AI model {claims.model} on {platform}.",
    }
    return {
        "claim_generator_info": [{"name": platform, "version": "1"}],
        "title": f"{claims.image_id}{mimetype_extension(mime)}",
        "format": mime,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [action]}},
            {
                "label": IMAGE_ASSERTION,
                "data": {
                    "platform": platform,
                    "model": claims.model,
                    "image": str(claims.image_id),
                },
            },
        ],
    }


def mimetype_extension(mime: str) -> str:
    return {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}[mime]


@functools.cache
def _c2pa_context(purpose: str) -> Any:
    import c2pa

    trust = {"trust_anchors": credentials().anchors}
    if purpose == "sign":
        builder = {
            "thumbnail": {"enabled": False},  # the image is small enough to be its own
            "claim_generator_info": {"name": settings.PROVENANCE_PLATFORM, "version": "1"},
        }
        # No reading back of every manifest signed (c2pa's default): 3 of a 64x64 image's
        # 4.7 ms of signing here. Each signer checks itself once instead (_signer_check).
        verify = {"verify_after_sign": False}
        return c2pa.Context.from_dict({"trust": trust, "builder": builder, "verify": verify})
    verify = {"remote_manifest_fetch": False, "ocsp_fetch": False}
    return c2pa.Context.from_dict({"trust": trust, "verify": verify})


class SigningFailed(RuntimeError):
    """The signing credentials make manifests that do not validate (a key that is not the
    certificate's): no image is signed with them."""


_signers = threading.local()


def _signer() -> Any:
    """This thread's signer. Making one parses the chain and key (half a millisecond here, a
    quarter of an image's signing), and a signer signs any number of manifests: so each
    thread that signs (the worker's encode threads) makes one, for the credentials in use,
    checks it (_signer_check) and keeps it. A thread of its own, as c2pa's signers are not
    shared between threads."""
    import c2pa

    creds = credentials()
    made = getattr(_signers, "made", None)
    if made is None or made[0] is not creds:
        info = c2pa.C2paSignerInfo(
            settings.C2PA_SIGNING_ALG.encode(),
            creds.chain,
            creds.key,
            settings.C2PA_TIMESTAMP_URL.encode() if settings.C2PA_TIMESTAMP_URL else None,
        )
        signer = c2pa.Signer.from_info(info)
        _signer_check(signer)
        made = _signers.made = (creds, signer)
    return made[1]


_PROBE = ImageClaims(uuid.UUID(int=0), "signing check")


def _signer_check(signer: Any) -> None:
    """Sign a probe with a new signer and read it back: raise SigningFailed if its manifest
    does not validate. What c2pa's verify_after_sign would find on every image (a key that
    does not match the certificate) is the same for every image a signer signs, so it is
    checked once per signer instead. (c2pa itself refuses to sign with a certificate outside
    its validity period, every time.)"""
    probe = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(probe, format="PNG")
    found = manifest_read(_signed(probe.getvalue(), "image/png", _PROBE, None, signer), "image/png")
    state = found.state if found is not None else "missing"
    if state not in ("Valid", "Trusted"):
        raise SigningFailed(
            f"The C2PA signing credentials make manifests that read {state}: check that "
            "C2PA_SIGNING_KEY is the key of the first certificate in C2PA_SIGNING_CERT."
        )
    if state != "Trusted":
        logger.warning("C2PA manifests are valid but untrusted: C2PA_TRUST_ANCHORS lacks the root")


def content_credentials_sign(
    data: bytes, mime: str, *, claims: ImageClaims, source: SourceImage | None = None
) -> bytes:
    """`data` (PNG, JPEG or WebP bytes of type `mime`) with a signed C2PA manifest embedded.

    An edit (`source` given) records the source photo as its parent ingredient.
    """
    return _signed(data, mime, claims, source, _signer())


def _signed(
    data: bytes, mime: str, claims: ImageClaims, source: SourceImage | None, signer: Any
) -> bytes:
    import c2pa

    builder = c2pa.Builder(_manifest(claims, mime), context=_c2pa_context("sign"))
    if source is not None:
        builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
        builder.add_ingredient(
            {"title": f"source{mimetype_extension(source.mime)}", "relationship": "parentOf"},
            source.mime,
            io.BytesIO(source.data),
        )
    else:
        builder.set_intent(
            c2pa.C2paBuilderIntent.CREATE, c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA
        )
    signed = io.BytesIO()
    builder.sign(signer, mime, io.BytesIO(data), signed)
    return signed.getvalue()


@dataclass(frozen=True)
class ManifestFound:
    """A C2PA manifest read from an image."""

    state: str  # C2PA's validation state: Invalid, Valid, or Trusted (chains to our anchors)
    issuer: str
    claims: dict[str, Any]  # our assertion's data (platform, model, image), {} when absent
    actions: list[dict[str, Any]]
    ingredients: list[dict[str, Any]]
    manifest: dict[str, Any] = field(repr=False)

    @property
    def from_this_platform(self) -> bool:
        return self.state == "Trusted" and bool(self.claims)


def manifest_read(data: bytes, mime: str) -> ManifestFound | None:
    """The active C2PA manifest of `data`, validated against this platform's trust anchors;
    None when it has none."""
    import c2pa

    try:
        reader = c2pa.Reader(mime, io.BytesIO(data), context=_c2pa_context("read"))
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "not found" in str(exc).lower():
            return None
        logger.info("Unreadable C2PA manifest: %s", exc)
        return ManifestFound("Invalid", "", {}, [], [], {})
    with reader:
        store = json.loads(reader.json())
        state = reader.get_validation_state() or "Invalid"
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    assertions = {item["label"]: item.get("data", {}) for item in active.get("assertions", [])}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {}).get(
        "actions", []
    )
    return ManifestFound(
        state=state,
        issuer=active.get("signature_info", {}).get("issuer", ""),
        claims=assertions.get(IMAGE_ASSERTION, {}),
        actions=actions,
        ingredients=active.get("ingredients", []),
        manifest=active,
    )


# --- The invisible watermark ---------------------------------------------------------------

# The watermark is embedded at a fixed canonical size and scaled to the image, so that a
# resized copy is read back by scaling it to that size again: no search over sizes. Measured
# in tests/generation/test_watermark.py and README: from 512 px on the short side the payload
# survives a JPEG re-save at quality 75 combined with a 0.75x resize (either order) and
# WebP at quality 80; from 256 px, a JPEG re-save alone (not a resize too; at 384x256 it lost 6
# payloads in 200); below 256 px it is not applied (too few pixels to carry it).
# The method, computed for all blocks at once: generation/watermark.py.
WATERMARK_MIN_SIDE = 256
WATERMARK_RELIABLE_SIDE = 512
_CANONICAL = 256  # pixels a side at which the bits are embedded and read
_SCALE = 64  # quantisation step of the blocks' largest singular value: strength
_REF_BYTES = 6  # 48 bits of the image's id, then a 16-bit CRC


def watermark_ref(image_id: uuid.UUID) -> bytes:
    return image_id.bytes[:_REF_BYTES]


def _payload_bits(ref: bytes) -> list[int]:
    payload = ref + binascii.crc_hqx(ref, 0).to_bytes(2, "big")
    return [int(bit) for byte in payload for bit in f"{byte:08b}"]


def watermark_embed(image: PILImage.Image, *, ref: bytes) -> PILImage.Image:
    """`image` with `ref` (6 bytes) embedded invisibly; unchanged below WATERMARK_MIN_SIDE."""
    cv2 = opencv()

    if min(image.size) < WATERMARK_MIN_SIDE:
        return image
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.float32)
    small = cv2.resize(rgb, (_CANONICAL, _CANONICAL), interpolation=cv2.INTER_AREA)
    small = small.round().clip(0, 255).astype(np.uint8)
    marked = dwt_dct_svd_embed(small, _payload_bits(ref), scale=_SCALE)
    # Only the change is scaled up, so the image keeps its own detail.
    change = cv2.resize(
        marked.astype(np.float32) - small.astype(np.float32),
        image.size,
        interpolation=cv2.INTER_CUBIC,
    )
    # Rounded half to even and clipped, as numpy's round().clip() would: a sixth of the time.
    return PILImage.fromarray(cv2.add(rgb, change, dtype=cv2.CV_8U))


def watermark_read(image: PILImage.Image) -> bytes | None:
    """The 6-byte reference embedded in `image`, or None when none reads back intact."""
    cv2 = opencv()

    if min(image.size) < WATERMARK_MIN_SIDE * 3 // 4:
        return None
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    small = cv2.resize(rgb, (_CANONICAL, _CANONICAL), interpolation=cv2.INTER_AREA)
    length = (_REF_BYTES + 2) * 8
    bits = dwt_dct_svd_read(small, length, scale=_SCALE)
    payload = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, length, 8))
    ref, check = payload[:_REF_BYTES], payload[_REF_BYTES:]
    if binascii.crc_hqx(ref, 0).to_bytes(2, "big") != check or ref in (b"\0" * 6, b"\xff" * 6):
        return None
    return ref


# --- Verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class Inspection:
    """What an image carries, read from its bytes alone."""

    mime: str
    width: int
    height: int
    manifest: ManifestFound | None
    watermark: bytes | None


def image_inspect(data: bytes, image: PILImage.Image) -> Inspection:
    """The C2PA manifest and watermark of `data`, an already decoded PNG, JPEG or WebP."""
    mime = MIME_TYPES[image.format or ""]
    return Inspection(
        mime=mime,
        width=image.width,
        height=image.height,
        manifest=manifest_read(data, mime),
        watermark=watermark_read(image),
    )


def image_by_watermark(ref: bytes) -> Image | None:
    """The image whose id starts with `ref` (a range on the primary key's index)."""
    low = uuid.UUID(bytes=ref + b"\0" * (16 - len(ref)))
    high = uuid.UUID(bytes=ref + b"\xff" * (16 - len(ref)))
    return (
        Image.objects.select_related("job")
        .filter(id__gte=low, id__lte=high)
        .order_by("created_at")
        .first()
    )


@dataclass(frozen=True)
class Verification:
    inspection: Inspection
    image: Image | None  # the platform's image it came from, whoever owns it
    member: bool  # whether the person asking belongs to the image's workspace

    @property
    def from_this_platform(self) -> bool:
        manifest = self.inspection.manifest
        return self.image is not None or bool(manifest and manifest.from_this_platform)


def provenance_verify(
    *, data: bytes, image: PILImage.Image, user: User | None, api_key: ApiKey | None = None
) -> Verification:
    """What `data` says about where it came from, and the platform's image it maps to.

    Anyone may ask. The image (and so its job) is found from the manifest's image id when the
    manifest is this platform's and valid, else from the watermark. `member` says whether the
    caller belongs to the image's workspace (with an API key: is the key's workspace); only
    then may the caller be shown the image and its job.
    """
    inspection = image_inspect(data, image)
    found: Image | None = None
    manifest = inspection.manifest
    if manifest is not None and manifest.from_this_platform:
        try:
            image_id: uuid.UUID | None = uuid.UUID(str(manifest.claims.get("image", "")))
        except ValueError:
            image_id = None
        if image_id is not None:
            found = Image.objects.select_related("job").filter(pk=image_id).first()
    if found is None and inspection.watermark is not None:
        found = image_by_watermark(inspection.watermark)
    member = False
    if found is not None and api_key is not None:
        member = api_key.workspace_id == found.workspace_id
    elif found is not None and user is not None and user.is_authenticated:
        member = Membership.objects.filter(user=user, workspace_id=found.workspace_id).exists()
    return Verification(inspection=inspection, image=found, member=member)


def verification_report(verification: Verification) -> dict[str, Any]:
    """What the caller may be told: what the image carries, and the job only for members.

    The manifest's image id and the job stay out unless the caller is a member of the image's
    workspace; everyone else learns only that it came from this platform, and how it was made.
    """
    inspection = verification.inspection
    manifest = inspection.manifest
    c2pa: dict[str, Any] | None = None
    if manifest is not None:
        actions = [action.get("action", "") for action in manifest.actions]
        sources = sorted(
            {
                action["digitalSourceType"]
                for action in manifest.actions
                if "digitalSourceType" in action
            }
        )
        c2pa = {
            "validation_state": manifest.state,
            "valid": manifest.state in ("Valid", "Trusted"),
            "from_this_platform": manifest.from_this_platform,
            "issuer": manifest.issuer,
            "actions": actions,
            "digital_source_types": sources,
            "ai_generated": TRAINED_ALGORITHMIC_MEDIA in sources,
            "platform": manifest.claims.get("platform"),
            "model": manifest.claims.get("model"),
            "ingredients": len(manifest.ingredients),
        }
    report: dict[str, Any] = {
        "from_this_platform": verification.from_this_platform,
        "c2pa": c2pa,
        "watermark": {"payload": inspection.watermark.hex()} if inspection.watermark else None,
        "image": None,
        "job": None,
    }
    if verification.member and verification.image is not None:
        image, job = verification.image, verification.image.job
        report["image"] = {
            "id": str(image.pk),
            "index": image.index,
            "created_at": image.created_at,
        }
        report["job"] = {
            "id": str(job.pk),
            "kind": job.kind,
            "status": job.status,
            "prompt": job.prompt,
            "created_at": job.created_at,
        }
    return report
