r"""What the synthetic rings task measures: `python -m gzevo_jax.data.testbed`.

    python -m gzevo_jax.data.testbed [--json_out=PATH] [--draws=32]

Prints a markdown table about `gz_rings/synthetic` as the current code
builds it (catalogues only: no rendering, so it runs in seconds):

  * size: galaxies, and the test split (`common.split_of`, by id);
  * labels: truly ringed share, labelled-ringed share, the Bayes accuracy
    given the true morphology (Monte Carlo over the volunteers' noise:
    p = P(label = 1 | morphology), accuracy = mean max(p, 1 - p)) and the
    accuracy of always answering the majority class;
  * the ring-bar coupling: ringed share among barred and unbarred disks;
  * how the label relates to what GZ-Evo asks about: its correlation with
    bar strength, arm strength and bulge fraction, and the held-out accuracy
    of predicting it (logistic regression, trained on one half, scored on
    the other) from the true GZ-Evo-visible parameters EXCLUDING the ring
    (bar, arms, bulge, clumps, inclination, snr, radius), against the
    majority baseline on the same half;
  * and in synthetic GZ-Evo (`gz_evo/synthetic`): the share of galaxies
    whose votes can carry ring information (classified in GZ2, whose
    'something odd' is the only GZ-Evo question a ring can answer, and with
    a ring the image shows).

`report(...)` returns the same numbers as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Optional, Sequence

import numpy as np

from gzevo_jax.data import common
from gzevo_jax.data import morphology as morph
from gzevo_jax.data import synthetic
from gzevo_jax.data import volunteers
from gzevo_jax.schema import Schema, get_schema

# gz_evo/synthetic's defaults (builders.GalaxyConfig; a test checks them).
GZ_EVO_NUM_GALAXIES = 20_000
GZ_EVO_LABELLED_FRACTION = 0.3
GZ_EVO_SEED = 0
GZ_EVO_SCHEMA = 'gz_evo_v0_1'
# A ring the image shows: a volunteer sees it at least this often.
VISIBLE = 0.5
# True parameters GZ-Evo's questions are about (the ring excluded).
GZ_EVO_VISIBLE_FIELDS = ('bar', 'arm_count', 'arm_pitch', 'arm_strength',
                         'bulge_fraction', 'clump_count', 'inclination',
                         'snr', 'radius')


def labels_of(ring_votes: np.ndarray) -> np.ndarray:
  """The task's label (0/1) from [n, 2] (yes, no) ring votes."""
  ring_votes = np.asarray(ring_votes, np.float64)
  return common.rings_label(ring_votes[:, 0] /
                            np.maximum(ring_votes.sum(1), 1.0))


def split_size(ids: np.ndarray, split: str = 'test') -> int:
  """Galaxies the hash split (`common.split_of`) puts in `split`."""
  return int(sum(common.split_of(str(i)) == split for i in ids))


def label_probability(m: morph.Morphology, draws: int,
                      seed: int = 0) -> np.ndarray:
  """P(label = 1 | morphology), [n]: Monte Carlo over volunteers' noise."""
  rng = np.random.default_rng(seed)
  total = np.zeros(m.num_galaxies)
  for _ in range(draws):
    total += labels_of(volunteers.ring_votes(m, rng))
  return total / draws


def bayes_accuracy(p: np.ndarray) -> float:
  """Accuracy of answering the likelier label given the morphology."""
  return float(np.mean(np.maximum(p, 1.0 - p)))


def majority_accuracy(labels: np.ndarray) -> float:
  """Accuracy of always answering the commoner label."""
  share = float(np.mean(labels))
  return max(share, 1.0 - share)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
  """Pearson correlation; 0 when either side is constant."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.std() == 0 or b.std() == 0:
    return 0.0
  return float(np.corrcoef(a, b)[0, 1])


# The morphology alone: without the imaging (signal-to-noise, apparent size),
# which decides how visible a ring is rather than whether there is one.
MORPHOLOGY_FIELDS = tuple(f for f in GZ_EVO_VISIBLE_FIELDS
                          if f not in ('snr', 'radius'))


def gz_evo_visible_features(m: morph.Morphology,
                            fields: Sequence[str] = GZ_EVO_VISIBLE_FIELDS
                            ) -> np.ndarray:
  """[n, d] true parameters GZ-Evo asks about (`fields`), ring excluded."""
  transforms = {'snr': np.log, 'inclination': np.cos}
  columns = [transforms.get(f, lambda x: x)(np.asarray(getattr(m, f),
                                                       np.float64))
             for f in fields]
  columns.append((m.bar > 0).astype(np.float64))
  return np.stack(columns, axis=1)


def held_out_accuracy(features: np.ndarray, labels: np.ndarray,
                      seed: int = 0) -> tuple[float, float, float]:
  """(logistic regression, majority) accuracy, and the logistic's ROC AUC,
  on a held-out half.

  Both are fit on a random half and scored on the other. The AUC does not
  depend on the class balance (0.5: no relation), so it compares tasks with
  different ringed shares.
  """
  from sklearn import metrics  # pylint: disable=g-import-not-at-top
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top
  from sklearn import pipeline  # pylint: disable=g-import-not-at-top
  from sklearn import preprocessing  # pylint: disable=g-import-not-at-top
  order = np.random.default_rng(seed).permutation(labels.shape[0])
  train, test = np.array_split(order, 2)
  model = pipeline.make_pipeline(preprocessing.StandardScaler(),
                                 linear_model.LogisticRegression(max_iter=1000))
  if np.unique(labels[train]).size < 2 or np.unique(labels[test]).size < 2:
    logistic, auc = float(np.mean(labels[test] == labels[train][0])), 0.5
  else:
    model.fit(features[train], labels[train])
    logistic = float(model.score(features[test], labels[test]))
    auc = float(metrics.roc_auc_score(
        labels[test], model.predict_proba(features[test])[:, 1]))
  majority = int(np.mean(labels[train]) > 0.5)
  return logistic, float(np.mean(labels[test] == majority)), auc


def rings_report(num_galaxies: int, seed: int, draws: int) -> dict:
  """The rings task's numbers (see the module docstring)."""
  catalogue = synthetic.rings_catalogue(num_galaxies, seed)
  m = catalogue.morphology
  labels = labels_of(catalogue.labels['ring_votes'])
  ringed = m.has_ring
  barred = m.bar > 0
  p = label_probability(m, draws)
  logistic, baseline, auc = held_out_accuracy(gz_evo_visible_features(m),
                                              labels)
  morphology_only, _, morphology_auc = held_out_accuracy(
      gz_evo_visible_features(m, MORPHOLOGY_FIELDS), labels)
  share = lambda mask: float(np.mean(mask)) if np.size(mask) else 0.0
  return {
      'galaxies': m.num_galaxies,
      'test_split': split_size(catalogue.ids),
      'truly_ringed': share(ringed),
      'labelled_ringed': share(labels),
      'labelled_among_ringed': share(labels[ringed]),
      'inner_ring_share': share(m.ring_type[ringed] == morph.INNER_RING),
      'partial_ring_share': share(m.ring_completeness[ringed] < 1.0),
      'ringed_if_barred': share(ringed[barred]),
      'ringed_if_unbarred': share(ringed[~barred]),
      'bayes_accuracy': bayes_accuracy(p),
      'majority_accuracy': majority_accuracy(labels),
      'corr_label_bar': correlation(labels, m.bar),
      'corr_label_arm_strength': correlation(labels, m.arm_strength),
      'corr_label_bulge_fraction': correlation(labels, m.bulge_fraction),
      'gz_evo_features_accuracy': logistic,
      'gz_evo_features_majority': baseline,
      'gz_evo_features_auc': auc,
      'morphology_features_accuracy': morphology_only,
      'morphology_features_auc': morphology_auc,
  }


def gz_evo_report(schema: Schema, num_galaxies: int, labelled_fraction: float,
                  seed: int) -> dict:
  """How much ring information synthetic GZ-Evo's votes can carry."""
  catalogue = synthetic.gz_evo_catalogue(schema, num_galaxies,
                                         labelled_fraction, seed)
  m, votes = catalogue.morphology, catalogue.labels['votes']
  in_gz2 = catalogue.labels['campaigns'][:, schema.campaigns.index('gz2')]
  visible = volunteers.visible_ring_strength(m) >= VISIBLE
  yes = votes[:, schema.column_index('something-odd-gz2_yes')]
  no = votes[:, schema.column_index('something-odd-gz2_no')]
  odd = yes > no
  return {
      'galaxies': m.num_galaxies,
      'ringed': float(np.mean(m.has_ring)),
      'visible_ring': float(np.mean(visible)),
      'in_gz2': float(np.mean(in_gz2)),
      'ring_information': float(np.mean(in_gz2 & visible)),
      'odd_yes_with_visible_ring': float(np.mean(odd & visible)),
  }


def report(num_galaxies: int = synthetic.RINGS_NUM_GALAXIES,
           seed: int = synthetic.RINGS_SEED, draws: int = 32,
           gz_evo_galaxies: int = GZ_EVO_NUM_GALAXIES) -> dict:
  """{'rings': rings_report(...), 'gz_evo': gz_evo_report(...)}."""
  return {
      'rings': rings_report(num_galaxies, seed, draws),
      'gz_evo': gz_evo_report(get_schema(GZ_EVO_SCHEMA), gz_evo_galaxies,
                              GZ_EVO_LABELLED_FRACTION, GZ_EVO_SEED),
  }


_ROWS = (
    ('rings', 'galaxies', 'galaxies in gz_rings/synthetic', '{:,}'),
    ('rings', 'test_split', 'test split (hash of id)', '{:,}'),
    ('rings', 'truly_ringed', 'truly ringed', '{:.1%}'),
    ('rings', 'labelled_ringed', 'labelled ringed', '{:.1%}'),
    ('rings', 'labelled_among_ringed', 'labelled ringed, of the ringed',
     '{:.1%}'),
    ('rings', 'inner_ring_share', 'inner rings, of the rings', '{:.1%}'),
    ('rings', 'partial_ring_share', 'partial rings, of the rings', '{:.1%}'),
    ('rings', 'ringed_if_barred', 'ringed, of barred disks', '{:.1%}'),
    ('rings', 'ringed_if_unbarred', 'ringed, of unbarred disks', '{:.1%}'),
    ('rings', 'bayes_accuracy', 'Bayes accuracy given true morphology',
     '{:.3f}'),
    ('rings', 'majority_accuracy', 'majority-class accuracy', '{:.3f}'),
    ('rings', 'corr_label_bar', 'corr(label, bar strength)', '{:+.3f}'),
    ('rings', 'corr_label_arm_strength', 'corr(label, arm strength)',
     '{:+.3f}'),
    ('rings', 'corr_label_bulge_fraction', 'corr(label, bulge fraction)',
     '{:+.3f}'),
    ('rings', 'gz_evo_features_accuracy',
     'label from GZ-Evo-visible truth, no ring (logistic, held out)',
     '{:.3f}'),
    ('rings', 'gz_evo_features_auc', 'its ROC AUC', '{:.3f}'),
    ('rings', 'morphology_features_accuracy',
     'the same from the morphology only (no signal-to-noise or size)',
     '{:.3f}'),
    ('rings', 'morphology_features_auc', 'its ROC AUC', '{:.3f}'),
    ('rings', 'gz_evo_features_majority', 'majority baseline, same half',
     '{:.3f}'),
    ('gz_evo', 'galaxies', 'galaxies in gz_evo/synthetic', '{:,}'),
    ('gz_evo', 'ringed', 'GZ-Evo: ringed', '{:.1%}'),
    ('gz_evo', 'visible_ring', 'GZ-Evo: ring visible (seen >= 50%)',
     '{:.1%}'),
    ('gz_evo', 'in_gz2', 'GZ-Evo: classified in GZ2', '{:.1%}'),
    ('gz_evo', 'ring_information',
     'GZ-Evo: GZ2 votes on a visible ring (can carry ring info)', '{:.2%}'),
    ('gz_evo', 'odd_yes_with_visible_ring',
     "GZ-Evo: 'something odd' majority yes, visible ring", '{:.2%}'),
)


def markdown(result: dict) -> str:
  """The report as a two-column markdown table."""
  lines = ['| quantity | value |', '|---|---|']
  for part, key, label, fmt in _ROWS:
    lines.append(f'| {label} | {fmt.format(result[part][key])} |')
  return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--json_out', default='',
                      help='also write the numbers as JSON here')
  parser.add_argument('--num_galaxies', type=int,
                      default=synthetic.RINGS_NUM_GALAXIES)
  parser.add_argument('--draws', type=int, default=32,
                      help='Monte Carlo draws of the volunteers per galaxy')
  args = parser.parse_args(argv)
  for flag in ('num_galaxies', 'draws'):
    if getattr(args, flag) < 1:
      parser.error(f'--{flag} must be a positive integer, got '
                   f'{getattr(args, flag)}')
  out_dir = os.path.dirname(os.path.abspath(args.json_out or '.'))
  if args.json_out and not os.path.isdir(out_dir):
    parser.error(f'--json_out: directory {out_dir} does not exist')
  result = report(num_galaxies=args.num_galaxies, draws=args.draws)
  print(markdown(result))
  if args.json_out:
    with open(args.json_out, 'w') as f:
      json.dump(result, f, indent=2)
    print(f'wrote {args.json_out}')


if __name__ == '__main__':
  main()
