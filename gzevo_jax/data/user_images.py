"""Users' own galaxy images: a folder or a catalogue of files, as model inputs.

A folder is searched recursively for PNG/JPEG and FITS files (the id of each
galaxy is its path under the folder, without the suffix); a CSV or parquet
catalogue names its files in a `file_loc` column (relative paths are taken
from the catalogue's folder) and may give an `id_str`. Each image becomes the
view an evaluation pipeline gives the encoder: a float32 [S, S, C] in [0, 1]
(non-square images centre-cropped to a square first, then resized with the
same antialiased bilinear filter as `augment.evaluation_view`).

Pillow, astropy (FITS, imported when a FITS file is read), pyarrow, numpy
and JAX only: no TensorFlow, so this runs on accelerator hosts without it.
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import functools
import os
from typing import Iterator, Optional, Sequence

import jax
import numpy as np

from gzevo_jax import errors

PICTURE_SUFFIXES = ('.png', '.jpg', '.jpeg')
FITS_SUFFIXES = ('.fits', '.fit', '.fts', '.fits.gz', '.fit.gz')
CATALOGUE_SUFFIXES = ('.csv', '.parquet')
FITS_STRETCHES = ('percentile', 'none', 'radio')
_PERCENTILES = (0.5, 99.5)  # The 'percentile' stretch's black and white.


class InputError(errors.UserError):
  """Input images that cannot be used: none found, unreadable, wrong bands."""


@dataclasses.dataclass(frozen=True)
class Galaxy:
  """One input image: the id its predictions are written under, and its file."""
  id_str: str
  file_loc: str


def image_suffix(path: str) -> Optional[str]:
  """The recognised suffix of an image file (lower case), or None."""
  lower = path.lower()
  return next((s for s in PICTURE_SUFFIXES + FITS_SUFFIXES
               if lower.endswith(s)), None)


# ---- Listing.


def list_folder(folder: str) -> list[Galaxy]:
  """Every image under `folder` (recursively, sorted by path).

  Hidden files and folders are left out; so are files of other types.
  """
  galaxies = []
  for root, dirs, files in os.walk(folder):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    for name in sorted(files):
      suffix = image_suffix(name)
      if suffix and not name.startswith('.'):
        path = os.path.join(root, name)
        relative = os.path.relpath(path, folder)[:-len(suffix)]
        galaxies.append(Galaxy(relative.replace(os.sep, '/'), path))
  if not galaxies:
    raise InputError(
        f'{folder} holds no images (looked for '
        f'{", ".join(PICTURE_SUFFIXES + FITS_SUFFIXES)}, in subfolders too)')
  check_unique_ids(galaxies, folder)
  return galaxies


def _catalogue_columns(path: str) -> dict[str, list]:
  """A CSV or parquet table as {column: values} (strings or None)."""
  if path.lower().endswith('.parquet'):
    import pyarrow.parquet as pq
    try:
      table = pq.read_table(path)
    except Exception as e:  # pylint: disable=broad-except
      raise InputError(f'cannot read the catalogue {path}: {e}') from e
    return {name: table.column(name).to_pylist()
            for name in table.column_names}
  with open(path, newline='', encoding='utf-8') as f:
    rows = list(csv.DictReader(f))
  names = rows[0].keys() if rows else []
  return {name: [row[name] or None for row in rows] for name in names}


def read_catalogue(path: str) -> list[Galaxy]:
  """The galaxies a CSV or parquet catalogue lists in its `file_loc` column.

  `id_str` comes from the column of that name if there is one, else from
  each file's name without its suffix. Relative `file_loc`s are taken from
  the catalogue's folder.
  """
  columns = _catalogue_columns(path)
  if 'file_loc' not in columns:
    raise InputError(f'the catalogue {path} has no file_loc column (its '
                     f'columns: {", ".join(columns) or "none"})')
  base = os.path.dirname(os.path.abspath(path))
  ids = columns.get('id_str')
  galaxies = []
  for row, file_loc in enumerate(columns['file_loc']):
    if not file_loc:
      raise InputError(f'{path} row {row} (0-based data row): file_loc is '
                       'empty')
    file_loc = os.path.join(base, os.path.expanduser(str(file_loc)))
    if ids is not None and not ids[row]:
      raise InputError(f'{path} row {row} (0-based data row): id_str is empty')
    name = os.path.basename(file_loc)
    default_id = name[:-len(image_suffix(name) or '')] or name
    galaxies.append(Galaxy(str(ids[row]) if ids else default_id, file_loc))
  if not galaxies:
    raise InputError(f'the catalogue {path} lists no galaxies')
  check_unique_ids(galaxies, path)
  return galaxies


def check_unique_ids(galaxies: Sequence[Galaxy], source: str) -> None:
  """Each id_str names one galaxy: predictions are written and resumed by id."""
  first = {}
  for galaxy in galaxies:
    other = first.setdefault(galaxy.id_str, galaxy.file_loc)
    if other != galaxy.file_loc:
      raise InputError(f'{source}: {other} and {galaxy.file_loc} have the '
                       f'same id_str {galaxy.id_str!r}; give each galaxy its '
                       'own id (rename one file, or set id_str in a catalogue)')


def list_inputs(path: str) -> list[Galaxy]:
  """A folder's images or a catalogue's galaxies; InputError otherwise."""
  if os.path.isdir(path):
    return list_folder(path)
  if path.lower().endswith(CATALOGUE_SUFFIXES):
    return read_catalogue(path)
  raise InputError(f'{path} is neither a folder of images nor a catalogue '
                   f'({" or ".join(CATALOGUE_SUFFIXES)} with a file_loc '
                   'column)')


# ---- Decoding.


def _picture_pixels(path: str) -> np.ndarray:
  """A PNG or JPEG as float32 [H, W, C] in [0, 1], C = 1 or 3."""
  from PIL import Image
  with Image.open(path) as image:
    image.load()
    if image.mode in ('1', 'L', 'LA'):
      return np.asarray(image.convert('L'), np.float32)[..., None] / 255.0
    if image.mode == 'I;16':
      return np.asarray(image, np.float32)[..., None] / 65535.0
    if image.mode in ('I', 'F'):
      raise InputError(f'{path}: 32-bit {image.mode!r} images are not read '
                       'as pictures; save it as FITS (or 8/16-bit PNG)')
    return np.asarray(image.convert('RGB'), np.float32) / 255.0


def _fits_pixels(path: str, stretch: str) -> np.ndarray:
  """The first image HDU of a FITS file as float32 [H, W, bands] in [0, 1].

  A 2-D image is one band; a 3-D cube is (bands, H, W) as FITS stores it
  (leading axes of length 1, as radio images' frequency and Stokes axes,
  are dropped).
  'percentile' maps each band's 0.5 and 99.5 percentiles to 0 and 1 and
  clips; 'none' takes values already in [0, 1]; 'radio' is the radio
  preprocessing of MiraBest and the gz_radio datasets (each band in units of
  its noise, clipped at 3 sigma and log-stretched: `radio.to_uint8`). NaN
  pixels become 0.
  """
  from astropy.io import fits
  with fits.open(path, memmap=False) as hdus:
    data = next((h.data for h in hdus
                 if h.data is not None and h.data.ndim >= 2), None)
    if data is None:
      raise InputError(f'{path}: no image HDU (2-D image or 3-D cube)')
    data = np.asarray(data, np.float32)
  while data.ndim > 3 and data.shape[0] == 1:
    data = data[0]  # Radio images' single frequency and Stokes axes.
  if data.ndim == 2:
    data = data[None]
  if data.ndim != 3:
    raise InputError(f'{path}: a {data.ndim}-D image; expected a 2-D image or '
                     'a (bands, height, width) cube')
  if stretch == 'radio':
    return _radio_pixels(path, data)
  pixels = np.moveaxis(data, 0, -1)
  if stretch == 'percentile':
    finite = np.where(np.isfinite(pixels), pixels, np.nan)
    low, high = np.nanpercentile(finite, _PERCENTILES, axis=(0, 1))
    pixels = (finite - low) / np.where(high > low, high - low, 1.0)
  elif np.nanmin(pixels) < 0.0 or np.nanmax(pixels) > 1.0:
    raise InputError(f'{path}: values outside [0, 1] with fits_stretch=none; '
                     'use fits_stretch=percentile')
  return np.clip(np.nan_to_num(pixels, nan=0.0), 0.0, 1.0).astype(np.float32)


def _radio_pixels(path: str, bands: np.ndarray) -> np.ndarray:
  """(bands, H, W) of a radio image -> float32 [H, W, bands] in [0, 1]."""
  from gzevo_jax.data import radio  # Numpy only.
  try:
    sigmas = np.stack([radio.noise_sigmas(band) for band in bands])
  except ValueError as e:
    raise InputError(f'{path}: {e}') from None
  return np.moveaxis(radio.to_uint8(sigmas)[..., 0], 0, -1).astype(
      np.float32) / 255.0


def read_pixels(path: str, fits_stretch: str = 'percentile') -> np.ndarray:
  """An image file as float32 [H, W, C] in [0, 1]; InputError if unreadable."""
  suffix = image_suffix(path)
  if suffix is None:
    raise InputError(f'{path}: not a PNG, JPEG or FITS file')
  try:
    if suffix in FITS_SUFFIXES:
      return _fits_pixels(path, fits_stretch)
    return _picture_pixels(path)
  except InputError:
    raise
  except FileNotFoundError as e:
    raise InputError(f'{path}: no such file') from e
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(f'{path}: cannot read it ({type(e).__name__}: {e})') from e


@functools.lru_cache(maxsize=None)
def _resize_fn(size: int, channels: int):
  """jit: a square [H, H, C] image -> [size, size, C] (one compile per H)."""
  return jax.jit(lambda x: jax.image.resize(
      x, (size, size, channels), method='linear', antialias=True))


def model_view(pixels: np.ndarray, size: int) -> tuple[np.ndarray, str]:
  """[H, W, C] -> ([size, size, C], what was done: '', 'resized', 'cropped').

  Non-square images lose their long side's edges to a centred square (a
  galaxy cutout is centred on its galaxy; squeezing would change shapes).
  """
  h, w = pixels.shape[:2]
  done = ''
  if h != w:
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    pixels = pixels[top:top + side, left:left + side]
    done = 'cropped'
  if pixels.shape[0] != size:
    with jax.default_device(jax.devices('cpu')[0]):
      pixels = np.asarray(_resize_fn(size, pixels.shape[-1])(pixels))
    done = done or 'resized'
  return pixels, done


# ---- Batches.


@dataclasses.dataclass
class ReadLog:
  """What reading did besides decoding, for the log and the summary file."""
  resized: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)  # 'HxW' -> images resized.
  cropped: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)  # 'HxW' -> cropped, then resized.
  skipped: list[tuple[str, str, str]] = dataclasses.field(
      default_factory=list)  # (id_str, file_loc, why).


def load_view(galaxy: Galaxy, size: int, channels: int,
              fits_stretch: str) -> tuple[np.ndarray, str, str]:
  """(view [size, size, channels], what model_view did, native 'HxW')."""
  pixels = read_pixels(galaxy.file_loc, fits_stretch)
  if pixels.shape[-1] != channels:
    raise InputError(
        f'{galaxy.file_loc}: {pixels.shape[-1]} band(s), but the checkpoint\'s '
        f'encoder takes {channels}-band images')
  native = f'{pixels.shape[0]}x{pixels.shape[1]}'
  view, done = model_view(pixels, size)
  return view, done, native


def _try_load(galaxy: Galaxy, size: int, channels: int, fits_stretch: str):
  """`load_view`'s result, or the InputError it raised (for the pool)."""
  try:
    return load_view(galaxy, size, channels, fits_stretch)
  except InputError as e:
    return e


def _batch(galaxies: Sequence[Galaxy], views: Sequence[np.ndarray],
           batch_size: int) -> dict[str, np.ndarray]:
  """Stacks views, padding to `batch_size` rows (mask False there)."""
  n = len(views)
  images = np.zeros((batch_size, *views[0].shape), np.float32)
  images[:n] = np.stack(views)
  pad = [''] * (batch_size - n)
  return {
      'image': images,
      'id_str': np.asarray([g.id_str for g in galaxies] + pad, object),
      'file_loc': np.asarray([g.file_loc for g in galaxies] + pad, object),
      'mask': np.arange(batch_size) < n,
  }


def batches(galaxies: Sequence[Galaxy], *, batch_size: int, size: int,
            channels: int, fits_stretch: str = 'percentile', threads: int = 0,
            skip_bad: bool = False,
            log: Optional[ReadLog] = None) -> Iterator[dict[str, np.ndarray]]:
  """The galaxies as padded batches of model views, in order.

  Images are read by `threads` threads (0: one per CPU), one batch ahead of
  the consumer. An unreadable image, or one with the wrong band count,
  raises InputError, or with `skip_bad` is left out and noted in `log`.
  Batches hold 'image' float32 [batch_size, size, size, channels],
  'id_str' and 'file_loc' (str objects, '' in padding) and 'mask'.
  """
  log = log if log is not None else ReadLog()
  chunks = [galaxies[i:i + batch_size]
            for i in range(0, len(galaxies), batch_size)]
  workers = threads or os.cpu_count() or 1
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    def submit(chunk):
      return [pool.submit(_try_load, g, size, channels, fits_stretch)
              for g in chunk]

    pending = submit(chunks[0]) if chunks else []
    for i, chunk in enumerate(chunks):
      results = [f.result() for f in pending]
      pending = submit(chunks[i + 1]) if i + 1 < len(chunks) else []
      kept, views = [], []
      for galaxy, result in zip(chunk, results):
        if isinstance(result, InputError):
          if not skip_bad:
            raise result
          log.skipped.append((galaxy.id_str, galaxy.file_loc, str(result)))
          continue
        view, done, native = result
        if done:
          (log.cropped if done == 'cropped' else log.resized)[native] += 1
        kept.append(galaxy)
        views.append(view)
      if kept:
        yield _batch(kept, views, batch_size)
