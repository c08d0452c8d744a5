"""What every TFDS builder of this package shares: Beam or in-process
generation of work units, with progress lines, and real data from
`manual_dir` with its skipped rows listed in the dataset's metadata."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterator, Optional

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from gzevo_jax.data import real_tables
from gzevo_jax.data import synthetic


class GeneratorBuilder(tfds.core.GeneratorBasedBuilder):
  """What every builder here shares: Beam or in-process generation, real
  data from manual_dir."""

  def __init__(self, *, skip_bad_rows: bool = False, **kwargs: Any):
    """`skip_bad_rows`: real configs skip (and report) bad rows, not fail."""
    self._skip_bad_rows = skip_bad_rows
    self._use_beam = False
    super().__init__(**kwargs)

  def _download_and_prepare(self, dl_manager, download_config):
    # Beam generation when the caller asked for a Beam runner or options.
    self._use_beam = (download_config.beam_runner is not None or
                      download_config.beam_options is not None)
    return super()._download_and_prepare(dl_manager, download_config)

  def _manual_dir(self, dl_manager) -> str:
    try:
      return str(dl_manager.manual_dir)
    except AssertionError as e:  # TFDS's message, with our instructions.
      raise real_tables.CatalogError(str(e)) from None

  def _real_generators(self, dl_manager, plan_fn: Callable[..., Any],
                       examples_fn: Callable[..., Iterator[tuple[str, dict]]],
                       *, rows_per_unit: int, image_size: int,
                       channels: int) -> dict[str, Any]:
    """Plans the manual_dir's rows (`real.Plan`), then generates their
    examples."""
    manual_dir = self._manual_dir(dl_manager)
    plan = plan_fn(manual_dir, skip_bad_rows=self._skip_bad_rows,
                   rows_per_unit=rows_per_unit)
    make = functools.partial(examples_fn, manual_dir=manual_dir,
                             image_size=image_size, channels=channels,
                             skip_bad_rows=self._skip_bad_rows,
                             on_bad_row=self._track_bad_rows(plan))
    return self._generators(plan.units, make)

  def _track_bad_rows(self, plan: Any) -> Optional[Callable[..., None]]:
    """Lists skipped rows in the dataset's metadata, so they stay visible.

    Rows the plan skipped are listed now; images found bad while generating
    are appended through the returned callback (in-process generation only:
    Beam workers log theirs as warnings).
    """
    skipped = [dataclasses.asdict(b) for b in plan.bad_rows]
    self.info.metadata['skipped_rows'] = skipped  # Written after generation.
    # Empty vote cells of campaigns that did not ask a galaxy: 0 votes.
    self.info.metadata['empty_unasked_vote_cells'] = dict(
        plan.empty_unasked_cells)
    if self._use_beam:
      return None
    return lambda bad_row: skipped.append(dataclasses.asdict(bad_row))

  def _generators(self, units: dict[str, list[Any]],
                  make_examples: Callable[..., Iterator[tuple[str, dict]]]
                  ) -> dict[str, Any]:
    """One generator (or Beam PTransform) per split over its work units."""
    if self._use_beam:
      beam = tfds.core.lazy_imports.apache_beam
      return {
          split: (beam.Create(split_units)
                  | f'{split}_examples' >> beam.FlatMap(make_examples))
          for split, split_units in units.items() if split_units}
    return {split: self._generate_examples(split, split_units, make_examples)
            for split, split_units in units.items() if split_units}

  def _generate_examples(self, split: str, units: list[Any],
                         make_examples: Callable[..., Iterator[tuple[str,
                                                                 dict]]]):
    """In-process generation: every unit's examples, with progress lines."""
    return _in_process(split, units, make_examples)


def _in_process(split: str, units: list[Any],
                make_examples: Callable[..., Iterator[tuple[str, dict]]]
                ) -> Iterator[tuple[str, dict]]:
  """Examples of all units, logging progress as it goes."""
  done = 0
  for i, unit in enumerate(units):
    for key_example in make_examples(unit):
      done += 1
      yield key_example
    if i % 8 == 7 or i == len(units) - 1:
      logging.info('%s: %d examples generated (%d/%d work units)', split,
                   done, i + 1, len(units))


def truth_feature_dict() -> tfds.features.FeaturesDict:
  """Ground-truth morphology stored with synthetic examples."""
  def dtype(name):
    if name in synthetic.INT_FIELDS:
      return np.int32
    return np.bool_ if name in synthetic.BOOL_FIELDS else np.float32
  return tfds.features.FeaturesDict({
      name: tfds.features.Scalar(dtype=dtype(name))
      for name in synthetic.TRUTH_FIELDS})
