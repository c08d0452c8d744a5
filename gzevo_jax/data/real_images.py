"""Locating and decoding the galaxy images of a catalogue's rows.

An image is either bytes in the table's `image` column (the Hugging Face
layout) or a file under `manual_dir` named by `file_loc`, or by `subfolder`
+ `filename`. The driver only checks that files exist; workers decode and
resize them with Pillow.
"""

from __future__ import annotations

import io
import os
from typing import Any, Callable, Optional, Sequence, Union

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageFile
import pyarrow as pa

from gzevo_jax.data import real_tables
from gzevo_jax.data.real_row_checks import Problems, RowProblem
from gzevo_jax.data.real_tables import CatalogError, IMAGE_COLUMN, PATH_COLUMNS

IMAGES_DIR = 'images'


def image_columns(path: str, names: Sequence[str]) -> list[str]:
  """The columns that locate a table's images; CatalogError if none do."""
  if IMAGE_COLUMN in names:
    return [IMAGE_COLUMN]
  columns = [c for c in PATH_COLUMNS if c in names]
  if 'file_loc' in columns or 'filename' in columns:
    return columns
  raise CatalogError(
      f'{path}: no image column. Expected `{IMAGE_COLUMN}` (image bytes, as '
      'in the Hugging Face layout), `file_loc`, or `subfolder` + `filename` '
      f'(under manual_dir/{IMAGES_DIR}); columns: '
      f'{real_tables.column_list(names)}')


def _image_candidates(manual_dir: str, file_loc: Optional[str],
                      subfolder: Optional[str],
                      filename: Optional[str]) -> list[str]:
  """Where an image may be, in the order tried."""
  images = os.path.join(manual_dir, IMAGES_DIR)
  candidates = []
  if file_loc:
    candidates += [
        os.path.join(manual_dir, file_loc),
        os.path.join(images, file_loc)
    ]
  if filename:
    candidates.append(os.path.join(images, subfolder or '', filename))
  return list(dict.fromkeys(candidates))  # Absolute file_loc: once.


def _image_locations(
    table: pa.Table
) -> list[tuple[Optional[str], Optional[str], Optional[str]]]:
  """(file_loc, subfolder, filename) of each row; None where absent."""
  columns = [
      table.column(c).to_pylist() if c in table.column_names else [None] *
      table.num_rows for c in PATH_COLUMNS
  ]
  return list(zip(*columns))


def _find_image(manual_dir: str, file_loc: Optional[str],
                subfolder: Optional[str], filename: Optional[str]) -> str:
  """The image file of a row; `RowProblem` if there is none."""
  candidates = _image_candidates(manual_dir, file_loc, subfolder, filename)
  if not candidates:
    raise RowProblem('no image location (file_loc / subfolder / filename are '
                     'empty)')
  for path in candidates:
    if os.path.isfile(path):
      return path
  raise RowProblem(f'image file not found; tried {", ".join(candidates)}')


def check_image_files(manual_dir: str, table: pa.Table,
                      problems: Problems) -> None:
  """Notes rows whose image file is missing (files are not opened here)."""
  missing = {}
  for row, location in enumerate(_image_locations(table)):
    try:
      _find_image(manual_dir, *location)
    except RowProblem as e:
      missing[row] = str(e)
  mask = np.zeros(table.num_rows, dtype=bool)
  mask[list(missing)] = True
  problems.add(mask, missing.__getitem__)


def load_image(data_or_path: Union[bytes, str], image_size: int, channels: int,
               where: str) -> np.ndarray:
  """Decodes an image to uint8 [image_size, image_size, channels].

  Converts to RGB (channels=3) or greyscale L (channels=1), crops the central
  square of non-square images and resizes with Pillow's antialiased bilinear
  filter (as torchvision's antialiased resize in galaxy-datasets / Zoobot).
  Missing, unreadable or truncated images raise CatalogError(where: reason).
  """
  try:
    return decode(data_or_path, image_size, channels)
  except RowProblem as e:
    raise CatalogError(f'{where}: {e}') from None


def decode(data_or_path: Union[bytes, str], image_size: int,
           channels: int) -> np.ndarray:
  """`load_image`, raising RowProblem: the caller knows which row it is."""
  if channels not in (1, 3):
    raise ValueError(f'channels must be 1 or 3, got {channels}')
  if ImageFile.LOAD_TRUNCATED_IMAGES:
    # Pillow would pad truncated files with grey; they must fail instead.
    logging.warning('PIL.ImageFile.LOAD_TRUNCATED_IMAGES was True; setting it '
                    'to False so that truncated images are reported.')
    ImageFile.LOAD_TRUNCATED_IMAGES = False
  source = (io.BytesIO(data_or_path)
            if isinstance(data_or_path, (bytes, bytearray)) else data_or_path)
  name = 'image bytes' if isinstance(source, io.BytesIO) else data_or_path
  try:
    with Image.open(source) as image:
      image.load()
      image = image.convert('RGB' if channels == 3 else 'L')
  except FileNotFoundError:
    raise RowProblem(f'image file not found: {name}') from None
  except Image.UnidentifiedImageError:
    raise RowProblem(f'not a readable image: {name}') from None
  except (OSError, ValueError, SyntaxError, EOFError,
          Image.DecompressionBombError) as e:
    raise RowProblem(f'truncated or corrupt image {name}: {e}') from None
  return _square_uint8(image, image_size, channels)


def _square_uint8(image: Image.Image, image_size: int,
                  channels: int) -> np.ndarray:
  """The central square of a Pillow image, resized (antialiased bilinear)
  to uint8 [image_size, image_size, channels]."""
  width, height = image.size
  if width != height:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
  if image.size != (image_size, image_size):
    image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
  array = np.asarray(image, dtype=np.uint8)
  return array[..., None] if channels == 1 else array


def decode_radio(data_or_path: Union[bytes, str], image_size: int,
                 channels: int) -> np.ndarray:
  """A radio image as uint8 [image_size, image_size, 1]: a FITS file (in
  any flux unit) gets the radio preprocessing (noise sigmas, 3-sigma clip,
  log stretch: `user_images`' 'radio' stretch); a PNG or JPEG is taken as
  already preprocessed (as MiraBest's are) and read as `decode` reads it.
  RowProblem for an unusable image."""
  from gzevo_jax.data import user_images  # Numpy, Pillow; astropy lazily.
  if channels != 1:
    raise ValueError(f'radio images have one band, got channels={channels}')
  is_path = isinstance(data_or_path, str)
  if not (is_path and user_images.image_suffix(data_or_path) in
          user_images.FITS_SUFFIXES):
    return decode(data_or_path, image_size, channels)
  try:
    pixels = user_images.read_pixels(data_or_path, fits_stretch='radio')
  except user_images.InputError as e:
    raise RowProblem(str(e)) from None
  if pixels.shape[-1] != 1:
    raise RowProblem(f'{data_or_path}: {pixels.shape[-1]} bands; a radio '
                     'image has one')
  grey = Image.fromarray(np.round(pixels[..., 0] * 255).astype(np.uint8), 'L')
  return _square_uint8(grey, image_size, channels)


def image_sources(manual_dir: str,
                  table: pa.Table) -> Callable[[int], Union[bytes, str]]:
  """row -> image bytes or file, for a table read by a worker.

  The function raises `RowProblem` for a row without a usable image.
  """
  if IMAGE_COLUMN not in table.column_names:
    locations = _image_locations(table)
    return lambda row: _find_image(manual_dir, *locations[row])
  values = table.column(IMAGE_COLUMN).to_pylist()
  return lambda row: _image_value(manual_dir, values[row])


def _image_value(manual_dir: str, value: Any) -> Union[bytes, str]:
  """Bytes or file of an `image` cell: binary, {bytes, path} or a path."""
  if isinstance(value, dict):  # datasets.Image.
    data, path = value.get('bytes'), value.get('path')
  elif isinstance(value, str):
    data, path = None, value
  else:
    data, path = value, None
  if data:
    return data
  if path:  # An image stored by reference.
    candidates = _image_candidates(manual_dir, path, None, None)
    for candidate in candidates:
      if os.path.isfile(candidate):
        return candidate
    raise RowProblem(f'image has no bytes and its path is not found; tried '
                     f'{", ".join(candidates)}')
  raise RowProblem(f'{IMAGE_COLUMN} is empty')
