"""The `:paper` variants set the hybrid paper's published hyperparameters.

Each value below is from the paper's code (inigoval/byol: the galaxy configs
`config/byol/*.yml` and the BYOL + supervised Lightning module); the README's
"The paper's recipe" gives the source of each and what still differs.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO_ROOT, tiny_config
from gzevo_jax import config_lib, models, optim, train, train_state
from gzevo_jax.schema import GZ_EVO_V0_1

OBJECTIVES = ('contrastive', 'supervised', 'hybrid')


def _paper(objective, variant='paper'):
  return config_lib.load_config_file(
      os.path.join(REPO_ROOT, 'configs', f'{objective}.py:{variant}'))


@pytest.mark.parametrize('objective', OBJECTIVES)
def test_paper_variant_sets_the_papers_recipe(objective):
  c = _paper(objective)
  config_lib.validate(c)
  assert c.objective == objective and c.run_name == f'{objective}_paper'
  # Optimizer: SGD, momentum 0.9, lr 0.06 not scaled by batch, weight decay
  # 5e-4 on every parameter (PyTorch's default), cosine decay, no warmup.
  assert c.optimizer.name == 'sgd'
  assert c.optimizer.base_learning_rate == 0.06
  assert c.optimizer.lr_reference_batch_size == 0
  assert c.optimizer.momentum == 0.9
  assert c.optimizer.weight_decay == 5e-4
  assert c.optimizer.decay_norm_and_bias
  assert c.warmup_duration == '0 steps'
  # Target network: a fixed momentum of 0.99 (m: 0.99, m_decay: False).
  assert c.ema.schedule == 'constant' and c.ema.tau_base == 0.99
  # lightly's BYOLProjectionHead(512, 1024, 256) and (256, 1024, 256).
  assert c.model.encoder == 'resnet18'
  assert (c.model.projector_hidden_dim, c.model.projection_dim,
          c.model.predictor_hidden_dim) == (1024, 256, 1024)
  # NegativeCosineSimilarity, symmetrised with 0.5.
  assert c.loss.byol_form == 'negative_cosine'
  # Supervised head: PermaDropout(0.2) then the Dirichlet top, on y0 only;
  # the supervised term rescaled to |L_byol|.
  assert c.model.head_dropout == 0.2
  assert c.loss.supervised_views == 'first'
  assert c.loss.rescale_supervised and c.loss.supervised_weight == 1.0
  # _gz2_view: RandomRotation(180), RandomResizedCrop(scale (0.3, 0.85),
  # ratio (0.8, 1.2)), both flips, RandomApply([ColorJitter(0.4, 0.4, 0.4,
  # 0.1)], p=0.8), RandomGrayscale(0.3), no blur.
  a = c.data.augment
  assert a.rotation_probability == 1.0
  assert tuple(a.rotation_degrees_range) == (-180.0, 180.0)
  assert a.horizontal_flip_probability == a.vertical_flip_probability == 0.5
  assert tuple(a.crop_scale_range) == (0.3, 0.85)
  assert tuple(a.crop_aspect_ratio_range) == (0.8, 1.2)
  assert a.color_jitter_probability == 0.8
  assert (a.brightness_probability, a.contrast_probability,
          a.saturation_probability, a.hue_probability) == (1, 1, 1, 1)
  assert a.brightness_max_delta == 0.0
  for field in ('brightness_factor_range', 'contrast_factor_range',
                'saturation_factor_range'):
    assert tuple(a[field]) == (0.6, 1.4), field
  assert a.hue_max_delta == 0.1
  assert a.grayscale_probability == 0.3
  assert a.blur_probability == 0.0 and a.noise_probability == 0.0


def test_paper_variant_at_full_width_has_the_papers_shapes():
  """With the 512-d ResNet-18: projector 512->1024->256, predictor 256->1024->256."""
  c = _paper('hybrid')
  c.model.width_multiplier = 1.0
  c.data.image_size = 32
  setup = train_state.build_setup(c)
  params = setup.model.init(jax.random.PRNGKey(0),
                            jnp.zeros((1, 32, 32, 3)), train=False)['params']
  kernels = lambda mlp: [params[mlp][f'Dense_{i}']['kernel'].shape
                         for i in (0, 1)]
  assert kernels('projector') == [(512, 1024), (1024, 256)]
  assert kernels('predictor') == [(256, 1024), (1024, 256)]
  assert params['head']['Dense_0']['kernel'].shape == (
      512, GZ_EVO_V0_1.num_answers)


def test_constant_ema_moves_the_target_by_tau_every_step():
  c = _paper('hybrid')
  for step in (0, 600, 1249):
    assert float(optim.ema_tau(step, 1250, c.ema.tau_base,
                               c.ema.schedule)) == pytest.approx(0.99)


def test_head_dropout_is_random_in_training_only():
  head = models.DirichletHead(GZ_EVO_V0_1.num_answers, dropout=0.2)
  x = jnp.ones((4, 32))
  variables = head.init(jax.random.PRNGKey(0), x)
  run = lambda key, train: head.apply(variables, x, train=train,
                                      rngs={'dropout': key})
  a, b = run(jax.random.PRNGKey(1), True), run(jax.random.PRNGKey(2), True)
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(run(jax.random.PRNGKey(1), False),
                                run(jax.random.PRNGKey(2), False))


@pytest.mark.parametrize('views', ['first', 'both'])
def test_supervised_term_reads_the_configured_views(views):
  """'first': the Dirichlet loss of view 1's concentrations only."""
  config = tiny_config('hybrid', **{'loss.supervised_views': views})
  setup = train_state.build_setup(config)
  state = train_state.create_train_state(setup)
  rng = np.random.default_rng(0)
  b, size = 4, config.data.image_size
  batch = {'image': rng.random((b, size, size, 3), np.float32),
           'image_2': rng.random((b, size, size, 3), np.float32),
           'votes': rng.integers(0, 3, (b, GZ_EVO_V0_1.num_answers))}
  targets = jnp.zeros((2 * b, config.model.projection_dim))
  key = jax.random.PRNGKey(3)

  def terms():
    _, (_, t) = train._loss_and_updates(state.params, state, batch, targets,
                                        key, setup)
    return t

  got = jax.vmap(lambda _: terms()['supervised_loss'], axis_name='batch')(
      jnp.zeros(1))[0]
  out = jax.vmap(lambda _: train._apply(
      setup.model, state.params, state.batch_stats,
      jnp.concatenate([batch['image'], batch['image_2']]), key)[0],
                 axis_name='batch')(jnp.zeros(1))
  conc = out['concentrations'][0]
  votes = batch['votes']
  if views == 'first':
    conc = conc[:b]
  else:
    votes = np.concatenate([votes, votes])
  expected = train._mean_dirichlet_nll(votes, conc, setup.schema)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
