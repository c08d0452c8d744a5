"""Optimizers and schedules: AdamW, LARS or SGD, linear warmup + cosine decay.

Biases and normalisation parameters (every parameter with ndim <= 1) are
excluded from weight decay and, for LARS, from the trust-ratio adaptation, as
in BYOL (Grill et al. 2020) and SimCLR, unless `decay_norm_and_bias` is set
(PyTorch's SGD decays every parameter, as the paper's code does).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ('adamw', 'lars', 'sgd')
EMA_SCHEDULES = ('cosine', 'constant')


def peak_learning_rate(opt_config: ml_collections.ConfigDict,
                       global_batch_size: int) -> float:
  """base_learning_rate scaled linearly by global batch / reference batch.

  `lr_reference_batch_size <= 0` disables the scaling (the base rate is the
  peak rate). BYOL uses base 0.2 with reference 256 for LARS.
  """
  ref = opt_config.lr_reference_batch_size
  scale = global_batch_size / ref if ref > 0 else 1.0
  return opt_config.base_learning_rate * scale


def learning_rate_schedule(peak: float, warmup_steps: int,
                           total_steps: int) -> optax.Schedule:
  """0 -> peak linearly over warmup_steps, then cosine to 0 at total_steps."""
  warmup_steps = min(warmup_steps, total_steps)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup_steps,
      decay_steps=max(total_steps, warmup_steps + 1), end_value=0.0)


def decay_mask(params: Any) -> Any:
  """True for parameters that get weight decay / trust ratio (ndim > 1)."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def _all_parameters(params: Any) -> Any:
  return jax.tree.map(lambda p: True, params)


def build_optimizer(opt_config: ml_collections.ConfigDict,
                    schedule: optax.Schedule) -> optax.GradientTransformation:
  """The optimizer named by `opt_config.name`, driven by `schedule`."""
  name = opt_config.name
  mask = (_all_parameters if opt_config.decay_norm_and_bias else decay_mask)
  if name == 'adamw':
    return optax.adamw(schedule, b1=opt_config.b1, b2=opt_config.b2,
                       eps=opt_config.eps,
                       weight_decay=opt_config.weight_decay, mask=mask)
  if name == 'sgd':
    # PyTorch's SGD: weight decay is added to the gradient before momentum.
    return optax.chain(
        optax.add_decayed_weights(opt_config.weight_decay, mask=mask),
        optax.sgd(schedule, momentum=opt_config.momentum))
  if name == 'lars':
    return optax.lars(schedule, weight_decay=opt_config.weight_decay,
                      weight_decay_mask=mask,
                      trust_ratio_mask=decay_mask,
                      trust_coefficient=opt_config.trust_coefficient,
                      momentum=opt_config.momentum)
  raise ValueError(f'unknown optimizer {name!r}; choose one of '
                   f'{", ".join(OPTIMIZERS)}')


def ema_tau(step: jax.Array | int, total_steps: int, tau_base: float,
            schedule: str = 'cosine') -> jax.Array:
  """The target network's decay at `step`.

  'cosine' (BYOL): tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2, rising
  from tau_base at step 0 to 1 at step K = total_steps. 'constant' (the
  paper's galaxy configs, `m_decay: False`): tau_base at every step.
  """
  if schedule == 'constant':
    return jnp.asarray(tau_base, jnp.float32)
  if schedule != 'cosine':
    raise ValueError(f'unknown EMA schedule {schedule!r}; choose one of '
                     f'{", ".join(EMA_SCHEDULES)}')
  progress = jnp.clip(jnp.asarray(step, jnp.float32) / max(total_steps, 1),
                      0.0, 1.0)
  return 1.0 - (1.0 - tau_base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


def ema_update(target: Any, online: Any, tau: jax.Array | float) -> Any:
  """target <- tau * target + (1 - tau) * online, leaf by leaf."""
  return jax.tree.map(lambda t, o: tau * t + (1.0 - tau) * o, target, online)

