"""Picture grids: titles from votes, and the two PNGs from a config."""

import os

import numpy as np
from PIL import Image

from conftest import tiny_config
from gzevo_jax.data import pictures
from gzevo_jax.schema import GZ_EVO_V0_1 as SCHEMA


def test_leading_answers_rank_by_count_with_question_fractions():
  votes = np.zeros(SCHEMA.num_answers, np.int32)
  votes[SCHEMA.column_index('smooth-or-featured-dr5_smooth')] = 30
  votes[SCHEMA.column_index('smooth-or-featured-dr5_featured-or-disk')] = 10
  votes[SCHEMA.column_index('how-rounded-dr5_round')] = 20
  votes[SCHEMA.column_index('how-rounded-dr5_in-between')] = 10
  top = pictures.leading_answers(SCHEMA, votes, top=3)
  assert [c for c, _ in top] == ['smooth-or-featured-dr5_smooth',
                                 'how-rounded-dr5_round',
                                 'smooth-or-featured-dr5_featured-or-disk']
  np.testing.assert_allclose([f for _, f in top], [0.75, 2 / 3, 0.25])
  title = pictures.galaxy_title(SCHEMA, votes, 'dr5')
  assert title.splitlines() == ['dr5', 'smooth-or-featured: smooth 75%',
                                'how-rounded: round 67%',
                                'smooth-or-featured: featured-or-disk 25%']
  assert pictures.galaxy_title(SCHEMA, np.zeros_like(votes), '') == (
      'unlabelled')


def test_two_campaigns_keep_the_campaign_in_each_question():
  votes = np.zeros(SCHEMA.num_answers, np.int32)
  votes[SCHEMA.column_index('merging-dr5_none')] = 5
  votes[SCHEMA.column_index('merging-dr8_none')] = 4
  title = pictures.galaxy_title(SCHEMA, votes, 'dr5+dr8')
  assert 'merging-dr5: none 100%' in title
  assert 'merging-dr8: none 100%' in title


def test_write_pictures_makes_both_grids(tmp_path):
  config = tiny_config('hybrid')
  paths = pictures.write_pictures(config, str(tmp_path), num=6)
  assert [os.path.basename(p) for p in paths] == ['galaxies.png', 'views.png']
  for path in paths:
    with Image.open(path) as image:
      assert image.size[0] > 300 and image.size[1] > 150
      pixels = np.asarray(image.convert('L'), float)
    assert pixels.std() > 10  # Not blank.


def test_label_titles_name_the_radio_classes():
  assert pictures.label_title('gz_radio/synthetic', 0) == 'FRI'
  assert pictures.label_title('gz_radio/synthetic', 1) == 'FRII'
  assert pictures.label_title('gz_radio/synthetic_pool', -1) == 'unlabelled'
  assert pictures.label_title('gz_rings/synthetic', 1) == 'label 1'


def test_write_pictures_titles_a_dataset_without_votes_by_label(tmp_path):
  from conftest import REPO_ROOT
  from gzevo_jax import config_lib
  config = config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', 'radio_byol.py:smoke'))
  config.data.dataset = 'gz_radio/synthetic_tiny'
  config.data.data_dir = str(tmp_path / 'tfds')
  paths = pictures.write_pictures(config, str(tmp_path), num=4)
  for path in paths:
    with Image.open(path) as image:
      assert np.asarray(image.convert('L'), float).std() > 10
