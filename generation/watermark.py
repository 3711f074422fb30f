"""Invisible-watermark's DWT-DCT-SVD method, computed on all blocks at once.

imwatermark/dwtDctSvd.py, with block 4 and a scale on U only: the U channel's haar LL band,
cut into 4x4 blocks, each block's largest singular value after a DCT quantised to carry one
bit, computed here on all 1024 blocks (of a 256x256 picture) at once. imwatermark loops over
the blocks in Python, a cv2.dct and an np.linalg.svd each: 24 ms of CPU per 512x512 image,
six times all other host work on a GPU worker. In the same runs (2026-12-02, a busy 2-core
host that took 44-56 ms for imwatermark's embed) this embeds in 6-8 ms, a seventh; it reads
in 5-8 ms against 21-34. Of watermark_embed's 10.7 ms of CPU in a later, slower hour, this
module took 4.2: the resizes and conversions around it are the rest. The marks
are imwatermark's to the last bit, and reads give the same bits
(tests/generation/test_watermark.py compares them), because each step does imwatermark's
arithmetic or comes within ~1e-15 of it: the haar DWT with PyWavelets' taps and order;
OpenCV's DCT on every block's rows and then columns (what cv2.dct does to one block); the
largest singular value and its vectors by power iteration, which meets LAPACK's to ~1e-15
where it dominates (as the block's mean makes it do), LAPACK itself for the rare block where
it does not; the reader's singular values from a stack of LAPACK SVDs. Quirks kept for that:
the detail bands go back into the inverse DWT with horizontal and vertical swapped, and U is
stored back by truncation.

generation/provenance.py chooses the payload, the size it is embedded at and the strength.
"""

from __future__ import annotations

import functools
from types import ModuleType

import numpy as np

BLOCK = 4
CHANNEL = 1  # U of YUV: the only channel with a scale


@functools.cache
def opencv() -> ModuleType:
    """OpenCV, imported when first needed (it takes a while), working on the calling thread
    alone: a worker marks several pictures at once on its own threads, and OpenCV's pool
    beside them only adds switching (a 512x512 mark took 15% more CPU with it here)."""
    import cv2

    cv2.setNumThreads(1)
    return cv2


def _block_dct(plane: np.ndarray, *, inverse: bool = False) -> np.ndarray:
    """Every 4x4 block of `plane` through the 2-D DCT (or its inverse), in place of the block.

    cv2.dct of one block transforms its rows, then its columns; a row of a block is 4
    consecutive values of the plane, so one DCT_ROWS call does every block's rows, and
    another on the transpose every block's columns: the same numbers as block by block.
    """
    cv2 = opencv()

    flags = cv2.DCT_ROWS | (cv2.DCT_INVERSE if inverse else 0)
    rows = cv2.dct(np.ascontiguousarray(plane).reshape(-1, BLOCK), flags=flags)
    columns = cv2.dct(
        np.ascontiguousarray(rows.reshape(plane.shape).T).reshape(-1, BLOCK), flags=flags
    )
    return columns.reshape(plane.shape[::-1]).T


def _blocks(plane: np.ndarray) -> np.ndarray:
    """(n, 4, 4): the plane's blocks in imwatermark's order, row by row."""
    rows, cols = plane.shape
    return (
        plane.reshape(rows // BLOCK, BLOCK, cols // BLOCK, BLOCK)
        .transpose(0, 2, 1, 3)
        .reshape(-1, BLOCK, BLOCK)
    )


def _plane(blocks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = shape
    return (
        blocks.reshape(rows // BLOCK, cols // BLOCK, BLOCK, BLOCK)
        .transpose(0, 2, 1, 3)
        .reshape(rows, cols)
    )


_HAAR = 0.7071067811865476  # PyWavelets' haar filter taps: ±1/sqrt(2)


def _haar_split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyWavelets' haar DWT along axis 0, rounded as it rounds: (approximation, detail)."""
    even, odd = x[0::2] * _HAAR, x[1::2] * _HAAR
    return even + odd, even - odd


def _haar_join(approximation: np.ndarray, detail: np.ndarray) -> np.ndarray:
    """PyWavelets' inverse haar DWT along axis 0, rounded as it rounds."""
    approximation, detail = approximation * _HAAR, detail * _HAAR
    out = np.empty((approximation.shape[0] * 2, *approximation.shape[1:]))
    out[0::2] = approximation + detail
    out[1::2] = approximation - detail
    return out


_Bands = tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]


def _low_band(yuv: np.ndarray) -> _Bands:
    """pywt.dwt2(U, "haar") as imwatermark takes it: the same numbers, in the same order:
    (approximation, (horizontal, vertical, diagonal))."""
    rows, cols = yuv.shape[0] // 4 * 4, yuv.shape[1] // 4 * 4
    low, high = _haar_split(yuv[:rows, :cols, CHANNEL].astype(np.float64))  # down the columns
    approximation, vertical = (band.T for band in _haar_split(low.T))  # then along the rows
    horizontal, diagonal = (band.T for band in _haar_split(high.T))
    return approximation, (horizontal, vertical, diagonal)


def _inverse_dwt(bands: _Bands) -> np.ndarray:
    """pywt.idwt2(bands, "haar"): the same numbers (along the rows first, as it goes)."""
    approximation, (horizontal, vertical, diagonal) = bands
    low = _haar_join(approximation.T, vertical.T).T
    return _haar_join(low, _haar_join(horizontal.T, diagonal.T).T)


def _largest_singular(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each block's largest singular value and its vectors, (s, u, v), and whether to trust them.

    Power iteration on all blocks at once: the Gram matrix squared four times, then a step on
    the block itself. Where s0 is at least four times s1 (an LL band block's mean sees to that
    but for fine checks of saturated colour) this meets LAPACK's s0 to ~1e-15 and its vectors
    to ~1e-14; `trusted` is False elsewhere, where only LAPACK gives LAPACK's answer.
    """
    tiny = np.finfo(np.float64).tiny
    gram = np.ascontiguousarray(np.swapaxes(blocks, 1, 2)) @ blocks  # contiguous: BLAS
    energy = np.einsum("nii->n", gram)  # the sum of the squared singular values
    power = gram / np.maximum(energy, tiny)[:, None, None]
    for _ in range(4):  # gram ** 16: s1's part shrinks by (s1 / s0) ** 32
        power = power @ power
        power /= np.maximum(np.einsum("nii->n", power), tiny)[:, None, None]
    column = np.argmax(np.diagonal(power, axis1=1, axis2=2), axis=1)
    v = power[np.arange(len(blocks)), :, column]
    u = np.einsum("nij,nj->ni", blocks, v)
    u /= np.maximum(np.linalg.norm(u, axis=1), tiny)[:, None]
    v = np.einsum("ni,nij->nj", u, blocks)
    s = np.linalg.norm(v, axis=1)
    v /= np.maximum(s, tiny)[:, None]
    trusted = (energy - s * s <= s * s / 16) & (s > 0)
    return s, u, v, trusted


def dwt_dct_svd_embed(rgb: np.ndarray, bits: list[int], *, scale: int) -> np.ndarray:
    """imwatermark's EmbedDwtDctSvd(bits, scales=[0, scale, 0], block=4).encode, on RGB."""
    cv2 = opencv()

    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)
    low, (horizontal, vertical, diagonal) = _low_band(yuv)
    blocks = _blocks(_block_dct(low))
    wanted = np.resize(np.asarray(bits), len(blocks))  # block n carries bit n % len(bits)
    s, u, v, trusted = _largest_singular(blocks)
    # s0 moves to a quarter of its quantisation step for a 0, three quarters for a 1.
    quantised = (s // scale + 0.25 + 0.5 * wanted) * scale
    rebuilt = blocks + (quantised - s)[:, None, None] * u[:, :, None] * v[:, None, :]
    if not trusted.all():
        hard = ~trusted
        u_all, s_all, vt_all = np.linalg.svd(blocks[hard])
        s_all[:, 0] = (s_all[:, 0] // scale + 0.25 + 0.5 * wanted[hard]) * scale
        rebuilt[hard] = u_all @ (s_all[:, :, None] * vt_all)  # as imwatermark rounds it
    low = _block_dct(_plane(rebuilt, low.shape), inverse=True)
    rows, cols = low.shape[0] * 2, low.shape[1] * 2
    # imwatermark hands the detail bands back with horizontal and vertical swapped, and
    # stores U back into uint8 by truncation: both kept, for the same pixels.
    yuv[:rows, :cols, CHANNEL] = _inverse_dwt((low, (vertical, horizontal, diagonal)))
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB)


def dwt_dct_svd_read(rgb: np.ndarray, length: int, *, scale: int) -> list[int]:
    """imwatermark's EmbedDwtDctSvd([], wmLen=length, scales=[0, scale, 0], block=4).decode."""
    cv2 = opencv()

    low, _ = _low_band(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV))
    s = np.linalg.svd(_blocks(_block_dct(low)))[1]  # with u and v: the same s as imwatermark
    votes = (s[:, 0] % scale > scale * 0.5).astype(np.float64)
    carrier = np.arange(len(votes)) % length
    share = np.bincount(carrier, weights=votes, minlength=length) / np.bincount(
        carrier, minlength=length
    )
    return [int(bit) for bit in share * 255 > 127]
