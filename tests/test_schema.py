"""The decision-tree schema: built-in GZ-Evo facts, subsets, user JSON, errors."""

import json
import os

import numpy as np
import pytest

from gzevo_jax import schema as schema_lib
from gzevo_jax.schema import GZ_EVO_V0_1, Schema, SchemaError

_REFERENCE = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir,
                          'shared', 'reference', 'gz_evo_v0_1_schema.json')


def test_gz_evo_counts_match_the_paper():
  assert GZ_EVO_V0_1.num_questions == 65
  assert GZ_EVO_V0_1.num_answers == 206
  assert GZ_EVO_V0_1.campaigns == ('dr12', 'dr5', 'dr8', 'gz2', 'candels',
                                   'hubble')


def test_label_columns_follow_the_catalog_convention():
  cols = GZ_EVO_V0_1.label_cols
  assert cols[0] == 'smooth-or-featured-dr12_smooth'
  assert 'spiral-arm-count-dr5_more-than-4' in cols
  assert len(set(cols)) == len(cols)
  assert GZ_EVO_V0_1.total_votes_col('bar-dr8') == 'bar-dr8_total-votes'
  assert GZ_EVO_V0_1.fraction_cols()[0] == 'smooth-or-featured-dr12_smooth_fraction'


def test_question_index_and_slices_agree():
  s = GZ_EVO_V0_1
  idx = s.answer_question_index
  assert idx.shape == (206,) and idx.dtype == np.int32
  assert np.all(np.diff(idx) >= 0)
  for q, sl in enumerate(s.question_slices):
    np.testing.assert_array_equal(idx[sl], q)
    assert s.label_cols[sl] == s.questions[q].columns


def test_dependencies_point_at_existing_answers():
  for q in GZ_EVO_V0_1.questions:
    if q.asked_if is not None:
      parent = GZ_EVO_V0_1.column_index(q.asked_if)
      owner = GZ_EVO_V0_1.answer_question_index[parent]
      assert GZ_EVO_V0_1.questions[owner].campaign == q.campaign


@pytest.mark.skipif(not os.path.exists(_REFERENCE),
                    reason='shared reference schema not beside the repo')
def test_shipped_copy_equals_the_reference():
  reference = Schema.from_json(_REFERENCE)
  assert reference == GZ_EVO_V0_1


def test_campaign_subsets_partition_the_columns():
  total = 0
  for c in GZ_EVO_V0_1.campaigns:
    sub = GZ_EVO_V0_1.campaign_subset(c)
    assert all(q.campaign == c for q in sub.questions)
    assert sub.num_answers == GZ_EVO_V0_1.campaign_answer_mask(c).sum()
    total += sub.num_answers
  assert total == 206
  assert GZ_EVO_V0_1.campaign_subset('gz2').num_answers == 30
  both = GZ_EVO_V0_1.campaign_subset(['dr5', 'dr8'])
  assert both.num_questions == 20
  with pytest.raises(KeyError, match='dr12, dr5'):
    GZ_EVO_V0_1.campaign_subset('gz3')


def test_json_round_trip(tmp_path):
  path = tmp_path / 'tree.json'
  path.write_text(json.dumps(GZ_EVO_V0_1.to_dict()))
  assert Schema.from_json(str(path)) == GZ_EVO_V0_1
  assert schema_lib.get_schema(str(path)) == GZ_EVO_V0_1
  assert schema_lib.get_schema('gz_evo_v0_1') == GZ_EVO_V0_1


def _write(tmp_path, questions):
  path = tmp_path / 'tree.json'
  path.write_text(json.dumps({'name': 'mine', 'questions': questions}))
  return str(path)


def test_user_tree_without_campaigns(tmp_path):
  s = Schema.from_json(_write(tmp_path, [
      {'question': 'ring', 'answers': ['yes', 'no'], 'asked_if': None},
      {'question': 'ring-type', 'answers': ['inner', 'outer'],
       'asked_if': 'ring_yes'}]))
  assert s.label_cols == ('ring_yes', 'ring_no', 'ring-type_inner',
                          'ring-type_outer')
  assert s.campaigns == ()


@pytest.mark.parametrize('questions, match', [
    ([{'question': 'a', 'answers': ['x', 'x']}], 'repeats answer'),
    ([{'question': 'a', 'answers': ['b_c']},
      {'question': 'a_b', 'answers': ['c']}], 'duplicate label column'),
    ([{'question': 'a', 'answers': ['x']},
      {'question': 'a', 'answers': ['y']}], 'duplicate question'),
    ([{'question': 'a', 'answers': ['x'], 'asked_if': 'b_y'}],
     "'b_y', which is not an answer column"),
    ([{'question': 'a', 'answers': ['x'], 'asked_if': 'b_y'},
      {'question': 'b', 'answers': ['y'], 'asked_if': 'a_x'}], 'cycle'),
    ([{'question': 'a', 'answers': []}], 'non-empty list'),
    ([{'answers': ['x']}], 'needs "question"'),
    ([], 'no questions'),
])
def test_malformed_trees_are_clear_errors(tmp_path, questions, match):
  path = _write(tmp_path, questions)
  with pytest.raises(SchemaError, match=match) as err:
    Schema.from_json(path)
  assert path in str(err.value)  # The error names the file.


def test_unreadable_files(tmp_path):
  with pytest.raises(FileNotFoundError, match='nope.json'):
    Schema.from_json(str(tmp_path / 'nope.json'))
  bad = tmp_path / 'bad.json'
  bad.write_text('{not json')
  with pytest.raises(SchemaError, match='not valid JSON'):
    Schema.from_json(str(bad))
  with pytest.raises(KeyError, match='gz_evo_v0_1'):
    schema_lib.get_schema('gz_evo_v9')


def test_gz_evo_v1_is_v0_1_without_clump_counts_plus_ukidss():
  """galaxy-datasets 0.0.25: gz_evo_v1_public_* plus ukidss_ortho_*."""
  v0, v1 = GZ_EVO_V0_1, schema_lib.load_builtin('gz_evo_v1')
  assert v1.campaigns == v0.campaigns + ('ukidss',)
  assert [c for c in v0.label_cols if c not in v1.label_cols] == [
      f'clump-count-{campaign}_{answer}' for campaign in ('candels', 'hubble')
      for answer in ('1', '2', '3', '4', '5-plus', 'cant-tell')]
  ukidss = v1.campaign_subset('ukidss')
  assert [c for c in v1.label_cols if c not in v0.label_cols] == list(
      ukidss.label_cols)
  assert (v1.num_questions, v1.num_answers, ukidss.num_answers) == (73, 224,
                                                                    30)
  for question in v1.questions:
    if question.campaign != 'ukidss':
      assert v0.question(question.name) == question
  assert ukidss.question('bulge-shape-ukidss').asked_if == (
      'disk-edge-on-ukidss_yes')
  assert ukidss.question('has-spiral-arms-ukidss').asked_if == (
      'smooth-or-featured-ukidss_featured-or-disk')
  assert ukidss.question('something-odd-ukidss').asked_if is None
