r"""Pictures of what the model sees: `python -m gzevo_jax.data.pictures`.

  python -m gzevo_jax.data.pictures --config=configs/hybrid.py \
      --out=runs/pictures [--config.data.augment.blur_probability=0.5 ...]

writes two PNGs into --out:
  galaxies.png  example galaxies of the training split, each titled with its
                campaign and leading vote fractions (or 'unlabelled');
  views.png     pairs of augmented views, exactly as the train pipeline makes
                them for the config (same seeds as training step 0).
With --cutouts=N it also writes N galaxies of the --split as one PNG each,
cutouts/<id_str>.png, the dataset's stored pixels: a folder to try
`configs/predict.py` on.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from absl import flags
from absl import logging
import matplotlib

matplotlib.use('Agg')  # Files only; no display needed.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from gzevo_jax import cli
from gzevo_jax.schema import Schema, get_schema


def leading_answers(schema: Schema, votes: np.ndarray,
                    top: int = 3) -> list[tuple[str, float]]:
  """The `top` answers most volunteers gave, with their fraction of the vote.

  Ranked by count, so answers near the root of the tree come first; each
  fraction is of its own question's votes.
  """
  totals = np.zeros(schema.num_answers)
  for s in schema.question_slices:
    totals[s] = votes[s].sum()
  order = [i for i in np.argsort(-votes, kind='stable') if votes[i] > 0]
  return [(schema.label_cols[i], votes[i] / totals[i]) for i in order[:top]]


def galaxy_title(schema: Schema, votes: np.ndarray, campaign: str) -> str:
  if votes.sum() == 0:
    return 'unlabelled'
  lines = [campaign]
  one_campaign = campaign and '+' not in campaign
  for column, fraction in leading_answers(schema, votes):
    question, _, answer = column.rpartition('_')
    # Drop the campaign suffix when the first line already names it.
    short = question.rsplit('-', 1)[0] if one_campaign else question
    lines.append(f'{short}: {answer} {fraction:.0%}')
  return '\n'.join(lines)


def label_title(dataset: str, label: int) -> str:
  """A class label as its name where the dataset names its classes (the FR
  classes of gz_radio); -1 is an unlabelled pool's."""
  if label < 0:
    return 'unlabelled'
  if dataset.startswith('gz_radio/'):
    from gzevo_jax.data import radio_builder  # TFDS, lazily.
    return radio_builder.FR_CLASSES[label]
  return f'label {label}'


def _as_rgb(image: np.ndarray) -> np.ndarray:
  """[H, W, C] in [0, 1] -> something imshow draws: grey, RGB or first 3."""
  image = np.clip(image, 0.0, 1.0)
  if image.shape[-1] == 1:
    return image[..., 0]
  return image[..., :3] if image.shape[-1] >= 3 else image.mean(-1)


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str], path: str,
               columns: int, title: Optional[str] = None,
               fontsize: float = 6.0) -> str:
  """Saves a grid of images with small titles as a PNG; returns the path."""
  rows = -(-len(images) // columns)
  title_lines = max(t.count('\n') + 1 for t in titles)
  fig, axes = plt.subplots(
      rows, columns, squeeze=False, layout='constrained',
      figsize=(2.1 * columns, (2.0 + 0.12 * title_lines) * rows))
  for ax in axes.flat:
    ax.axis('off')
  for ax, image, text in zip(axes.flat, images, titles):
    ax.imshow(_as_rgb(image), cmap='gray', interpolation='nearest')
    ax.set_title(text, fontsize=fontsize, loc='left')
  if title:
    fig.suptitle(title, fontsize=9)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def write_pictures(config, out_dir: str, num: int = 24) -> tuple[str, str]:
  """Writes galaxies.png and views.png for the config's dataset."""
  from gzevo_jax.data import pipeline  # TensorFlow, lazily.
  from gzevo_jax.data import sources
  builder = sources.prepare_dataset(config.data)
  with_votes = 'votes' in builder.info.features
  keys = ('id_str', 'votes', 'campaign') if with_votes else ('id_str', 'label')
  batch = next(pipeline.eval_batches(
      builder, 'train', batch_size=num, image_size=config.data.image_size,
      keys=keys))
  if with_votes:
    schema = get_schema(config.schema)
    titles = [galaxy_title(schema, v, c.decode())
              for v, c in zip(batch['votes'], batch['campaign'])]
    caption = 'campaign and leading votes'
  else:
    titles = [label_title(config.data.dataset, int(label))
              for label in batch['label'][batch['mask']]]
    caption = 'label'
  galaxies = image_grid(
      list(batch['image'][batch['mask']]), titles,
      os.path.join(out_dir, 'galaxies.png'), columns=6,
      title=f'{config.data.dataset}: {caption}')

  views = next(pipeline.train_batches(
      builder, config.data, local_batch_size=num, two_views=True,
      seed=config.seed, label_keys=()))
  pairs, pair_titles = [], []
  for i in range(num):
    pairs += [views['image'][i], views['image_2'][i]]
    pair_titles += [f'#{i} view 1', f'#{i} view 2']
  views_path = image_grid(pairs, pair_titles,
                          os.path.join(out_dir, 'views.png'), columns=8,
                          title='augmented view pairs (config.data.augment)')
  return galaxies, views_path


def _file_name(id_str: str) -> str:
  """An id as a file name: path separators and odd characters become '_'."""
  return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in id_str)


def write_cutouts(config, out_dir: str, num: int, split: str = 'test') -> str:
  """Writes `num` galaxies of `split` as <out_dir>/<id_str>.png; the folder.

  The dataset's stored pixels, as 8-bit PNGs: nothing is lost (the stored
  images are 8-bit), so a model reading them back sees what it sees when it
  reads the dataset.
  """
  from PIL import Image
  from gzevo_jax.data import pipeline  # TensorFlow, lazily.
  from gzevo_jax.data import sources
  builder = sources.prepare_dataset(config.data)
  stored_size = builder.info.features['image'].shape[0]
  os.makedirs(out_dir, exist_ok=True)
  written = 0
  for batch in pipeline.eval_batches(builder, split, batch_size=min(num, 256),
                                     image_size=stored_size):
    for image, id_str in zip(batch['image'][batch['mask']],
                             batch['id_str'][batch['mask']]):
      if written == num:
        return out_dir
      pixels = np.round(image * 255).astype(np.uint8)
      Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels
                      ).save(os.path.join(out_dir,
                                          _file_name(id_str.decode()) + '.png'))
      written += 1
  return out_dir


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run says what to do with stray arguments.
  paths = list(write_pictures(flags.FLAGS.config, flags.FLAGS.out,
                              flags.FLAGS.num))
  if flags.FLAGS.cutouts:
    paths.append(write_cutouts(flags.FLAGS.config,
                               os.path.join(flags.FLAGS.out, 'cutouts'),
                               flags.FLAGS.cutouts, flags.FLAGS.split))
  for path in paths:
    logging.info('wrote %s', path)
    print(path)


if __name__ == '__main__':
  # Flags only for the command: other commands import image_grid from here.
  cli.config_flag('configs/hybrid.py')
  flags.DEFINE_string('out', 'runs/pictures', 'output directory')
  flags.DEFINE_integer('num', 24, 'galaxies (and view pairs) to show')
  flags.DEFINE_integer('cutouts', 0, 'also write this many galaxies as one '
                       'PNG each, into <out>/cutouts', lower_bound=0)
  flags.DEFINE_string('split', 'test', 'the split --cutouts come from')
  cli.run(main)
