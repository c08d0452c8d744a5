r"""Predictions for your own galaxies from a pretrained checkpoint.

  python -m gzevo_jax.main --config=configs/predict.py \
      --config.pretrained_workdir=runs/hybrid --config.input=PATH

PATH: a folder of images (.png/.jpg/.jpeg, .fits with 1 or more bands), a
CSV or parquet catalogue with a `file_loc` column (and optionally `id_str`),
or a built dataset split NAME:SPLIT (e.g. gz_rings/synthetic:test). Writes
predictions.parquet (ids, predicted vote fractions per answer, intervals,
the leading answer of the first question, embeddings), predict.json and,
when images were skipped, skipped.csv to the workdir (default
runs/predict_<name of the pretrained workdir>). A rerun into the same
workdir skips the galaxies already written.
"""

import ml_collections

from gzevo_jax import config_lib


def get_config(arg=None):
  c = config_lib.encoder_evaluation_config('predict')
  del c.data.dataset  # config.input says what to read.
  c.input = ml_collections.config_dict.placeholder(str)  # Required: folder, catalogue, NAME:SPLIT.
  # Central interval of each predicted vote fraction (None: no intervals).
  c.interval_level = 0.9
  # FITS pixel values to [0, 1]: 'percentile' maps each band's 0.5 and 99.5
  # percentiles to 0 and 1; 'none' expects values already in [0, 1].
  c.fits_stretch = 'percentile'
  c.rows_per_part = 4096  # Rows per resumable part file (lost at most on a kill).
  return config_lib.apply_variant(c, arg, {})
