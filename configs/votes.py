r"""Vote-prediction quality of a supervised or hybrid checkpoint.

  python -m gzevo_jax.main --config=configs/votes.py \
      --config.pretrained_workdir=runs/hybrid

Scores the checkpoint's Dirichlet head on the labelled galaxies of the GZ-Evo
split it was trained from (its own stored dataset and image size): per-question
Dirichlet-Multinomial NLL, mean absolute error of the predicted vote
fractions, coverage of 50/80/95% predictive intervals of the vote counts, and
a reliability plot. Writes votes.json and reliability.png to the workdir
(default runs/votes_<name of the pretrained workdir>).
"""

from gzevo_jax import config_lib


def get_config(arg=None):
  c = config_lib.encoder_evaluation_config('votes')
  del c.data.dataset  # The checkpoint's own dataset is used.
  c.data.split = 'test'
  return config_lib.apply_variant(c, arg, {})
