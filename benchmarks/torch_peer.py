r"""The same train steps in PyTorch, for a side-by-side speed comparison.

  python -m gzevo_jax.benchmark --config=configs/hybrid.py --peer=torch
  python benchmarks/torch_peer.py --objective=hybrid      # this file alone

Users compare this codebase with PyTorch (Zoobot and the hybrid paper's code
are PyTorch), so the benchmark can time, in one run and alternating with the
JAX step, a plain PyTorch implementation of the very same step: the same
ResNet (v1.5, zero-initialised last BatchNorm of each block), BYOL
projector and predictor (Dense -> BatchNorm -> ReLU -> Dense), Dirichlet
head (1 + 100 sigmoid), Dirichlet-Multinomial loss summed over questions,
symmetrised BYOL loss, EMA target network, backward pass and optimizer
(LARS as optax.lars computes it, AdamW or SGD), on the same batch shapes and
thread count. It is written as a PyTorch user would write it (NCHW, eager
mode, foreach optimizers), not tuned.

This file is not part of the package and the package never imports torch:
`gzevo_jax.benchmark --peer=torch` loads it by path. Install CPU PyTorch
with the optional extra, `pip install -e '.[peer]'` (see README).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Callable, Optional, Sequence

import torch
from torch import nn

# The package's own width rule and timing loop (the package never imports
# this file's torch; this file may import the package).
from gzevo_jax.benchmark import time_alternating
from gzevo_jax.models.encoders import scale_width

_CONCENTRATION_RANGE = 100.0
_NORMALIZE_EPS = 1e-6
_BATCH_NORM = dict(momentum=0.1, eps=1e-5)  # Flax momentum 0.9 = torch 0.1.
_STAGE_SIZES = {'resnet18': ((2, 2, 2, 2), False),
                'resnet50': ((3, 4, 6, 3), True)}


@dataclasses.dataclass(frozen=True)
class PeerSpec:
  """Everything the step depends on, as plain values (no JAX, no config)."""
  objective: str                      # supervised, contrastive or hybrid.
  batch_size: int
  image_size: int
  channels: int
  answer_question_index: Sequence[int]  # Question of each answer column.
  encoder: str = 'resnet18'
  width_multiplier: float = 1.0
  small_image_stem: bool = False
  projector_hidden_dim: int = 512
  projection_dim: int = 128
  predictor_hidden_dim: int = 512
  head_dropout: float = 0.0
  byol_form: str = 'squared_distance'
  supervised_views: str = 'both'
  supervised_weight: float = 1.0
  rescale_supervised: bool = False
  optimizer: str = 'lars'
  learning_rate: float = 0.05
  momentum: float = 0.9
  weight_decay: float = 1.5e-6
  trust_coefficient: float = 0.001
  decay_norm_and_bias: bool = False
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  tau: float = 0.99
  threads: Optional[int] = None       # None: leave torch's default.
  seed: int = 0


class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, in_channels: int, filters: int, stride: int):
    super().__init__()
    self.body = nn.Sequential(
        nn.Conv2d(in_channels, filters, 3, stride, 1, bias=False),
        nn.BatchNorm2d(filters, **_BATCH_NORM), nn.ReLU(inplace=True),
        nn.Conv2d(filters, filters, 3, 1, 1, bias=False),
        nn.BatchNorm2d(filters, **_BATCH_NORM))
    nn.init.zeros_(self.body[-1].weight)
    self.projection = _projection(in_channels, filters * self.expansion,
                                  stride)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    residual = x if self.projection is None else self.projection(x)
    return torch.relu(residual + self.body(x))


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, in_channels: int, filters: int, stride: int):
    super().__init__()
    out = filters * self.expansion
    self.body = nn.Sequential(
        nn.Conv2d(in_channels, filters, 1, bias=False),
        nn.BatchNorm2d(filters, **_BATCH_NORM), nn.ReLU(inplace=True),
        nn.Conv2d(filters, filters, 3, stride, 1, bias=False),  # v1.5.
        nn.BatchNorm2d(filters, **_BATCH_NORM), nn.ReLU(inplace=True),
        nn.Conv2d(filters, out, 1, bias=False),
        nn.BatchNorm2d(out, **_BATCH_NORM))
    nn.init.zeros_(self.body[-1].weight)
    self.projection = _projection(in_channels, out, stride)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    residual = x if self.projection is None else self.projection(x)
    return torch.relu(residual + self.body(x))


def _projection(in_channels: int, out_channels: int,
                stride: int) -> Optional[nn.Module]:
  """The 1x1 shortcut where the block changes shape, as in Flax's ResNet."""
  if in_channels == out_channels and stride == 1:
    return None
  return nn.Sequential(
      nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
      nn.BatchNorm2d(out_channels, **_BATCH_NORM))


class ResNet(nn.Module):
  """ResNet v1.5 trunk with global average pooling (no classifier)."""

  def __init__(self, encoder: str, channels: int, width_multiplier: float,
               small_image_stem: bool):
    super().__init__()
    if encoder not in _STAGE_SIZES:
      raise ValueError(f'the torch peer has no encoder {encoder!r}; it has '
                       f'{", ".join(_STAGE_SIZES)}')
    stage_sizes, bottleneck = _STAGE_SIZES[encoder]
    block = Bottleneck if bottleneck else BasicBlock
    width = lambda c: scale_width(c, width_multiplier)  # noqa: E731
    stem = width(64)
    if small_image_stem:
      layers = [nn.Conv2d(channels, stem, 3, 1, 1, bias=False),
                nn.BatchNorm2d(stem, **_BATCH_NORM), nn.ReLU(inplace=True)]
    else:
      layers = [nn.Conv2d(channels, stem, 7, 2, 3, bias=False),
                nn.BatchNorm2d(stem, **_BATCH_NORM), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1)]
    in_channels = stem
    for i, blocks in enumerate(stage_sizes):
      for j in range(blocks):
        filters = width(64 * 2**i)
        layers.append(block(in_channels, filters, 2 if i > 0 and j == 0 else 1))
        in_channels = filters * block.expansion
    self.trunk = nn.Sequential(*layers)
    self.feature_dim = in_channels
    for module in self.modules():
      if isinstance(module, nn.Conv2d):  # He-normal over fan-out, as Flax.
        nn.init.kaiming_normal_(module.weight, mode='fan_out',
                                nonlinearity='relu')

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.trunk(x).mean(dim=(2, 3))


def mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Module:
  """Dense -> BatchNorm -> ReLU -> Dense: the BYOL projector and predictor."""
  return nn.Sequential(nn.Linear(in_dim, hidden_dim),
                       nn.BatchNorm1d(hidden_dim, **_BATCH_NORM),
                       nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


class DirichletHead(nn.Module):

  def __init__(self, in_dim: int, num_answers: int, dropout: float):
    super().__init__()
    self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
    self.dense = nn.Linear(in_dim, num_answers)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return 1.0 + _CONCENTRATION_RANGE * torch.sigmoid(
        self.dense(self.dropout(x)))


def _log_factorial(k: torch.Tensor) -> torch.Tensor:
  return torch.where(k > 0, torch.lgamma(k + 1.0), torch.zeros_like(k))


def dirichlet_multinomial_nll(counts: torch.Tensor,
                              concentrations: torch.Tensor,
                              question_index: torch.Tensor,
                              num_questions: int) -> torch.Tensor:
  """[batch, questions] negative log-likelihoods (gzevo_jax.losses' formula)."""
  k, a = counts.float(), concentrations.float()

  def per_question(x: torch.Tensor) -> torch.Tensor:
    out = x.new_zeros(x.shape[0], num_questions)
    return out.index_add_(1, question_index, x)

  per_answer = torch.lgamma(k + a) - torch.lgamma(a) - _log_factorial(k)
  n, a0 = per_question(k), per_question(a)
  log_p = (_log_factorial(n) + torch.lgamma(a0) - torch.lgamma(n + a0)
           + per_question(per_answer))
  return -log_p


def _normalize(x: torch.Tensor) -> torch.Tensor:
  squared = x.square().sum(-1, keepdim=True)
  return x * torch.rsqrt(squared.clamp_min(_NORMALIZE_EPS**2))


def byol_loss(pred_1, pred_2, target_1, target_2,
              form: str = 'squared_distance') -> torch.Tensor:
  """Symmetrised BYOL loss, as gzevo_jax.losses.byol_loss."""
  target_1, target_2 = target_1.detach(), target_2.detach()
  cos = lambda p, t: (_normalize(p) * _normalize(t)).sum(-1)  # noqa: E731
  if form == 'squared_distance':
    return (4.0 - 2.0 * (cos(pred_1, target_2) + cos(pred_2, target_1))).mean()
  if form == 'negative_cosine':
    return (-0.5 * (cos(pred_1, target_2) + cos(pred_2, target_1))).mean()
  raise ValueError(f'unknown BYOL loss form {form!r}')


class Lars:
  """optax.lars (add_decayed_weights -> scale_by_trust_ratio ->
  scale_by_learning_rate -> trace) on torch tensors; PyTorch has no LARS.

  Weight decay and the trust ratio skip parameters with ndim <= 1 (weight
  decay only when `decay_norm_and_bias` is False), as gzevo_jax.optim does.
  """

  def __init__(self, params: Sequence[torch.Tensor], spec: PeerSpec):
    self.params = list(params)
    self.spec = spec
    self.momentum = [torch.zeros_like(p) for p in self.params]

  @torch.no_grad()
  def step(self) -> None:
    s = self.spec
    for p, trace in zip(self.params, self.momentum):
      update = p.grad
      if s.weight_decay and (p.ndim > 1 or s.decay_norm_and_bias):
        update = update.add(p, alpha=s.weight_decay)
      if p.ndim > 1:
        param_norm, update_norm = p.norm(), update.norm()
        ratio = s.trust_coefficient * param_norm / update_norm
        ratio = torch.where((param_norm > 0) & (update_norm > 0), ratio,
                            torch.ones_like(ratio))
        update = update * ratio
      trace.mul_(s.momentum).add_(update, alpha=-s.learning_rate)
      p.add_(trace)

  def zero_grad(self) -> None:
    for p in self.params:
      p.grad = None


def make_optimizer(params: Sequence[torch.Tensor], spec: PeerSpec):
  """The spec's optimizer over `params` (weight decay masked like optax's)."""
  if spec.optimizer == 'lars':
    return Lars(params, spec)
  decay = [p for p in params if p.ndim > 1 or spec.decay_norm_and_bias]
  other = [p for p in params if not (p.ndim > 1 or spec.decay_norm_and_bias)]
  groups = [{'params': decay, 'weight_decay': spec.weight_decay},
            {'params': other, 'weight_decay': 0.0}]
  if spec.optimizer == 'adamw':
    return torch.optim.AdamW(groups, lr=spec.learning_rate,
                             betas=(spec.b1, spec.b2), eps=spec.eps)
  if spec.optimizer == 'sgd':
    return torch.optim.SGD(groups, lr=spec.learning_rate,
                           momentum=spec.momentum)
  raise ValueError(f'the torch peer has no optimizer {spec.optimizer!r}')


class GalaxyModel(nn.Module):
  """Encoder plus the objective's heads, as gzevo_jax.models.GalaxyModel."""

  def __init__(self, spec: PeerSpec):
    super().__init__()
    self.encoder = ResNet(spec.encoder, spec.channels, spec.width_multiplier,
                          spec.small_image_stem)
    features = self.encoder.feature_dim
    self.projector = self.predictor = self.head = None
    if spec.objective in ('contrastive', 'hybrid'):
      self.projector = mlp(features, spec.projector_hidden_dim,
                           spec.projection_dim)
      self.predictor = mlp(spec.projection_dim, spec.predictor_hidden_dim,
                           spec.projection_dim)
    if spec.objective in ('supervised', 'hybrid'):
      self.head = DirichletHead(features, len(spec.answer_question_index),
                                spec.head_dropout)

  def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
    representation = self.encoder(x)
    out = {'representation': representation}
    if self.projector is not None:
      out['projection'] = self.projector(representation)
      out['prediction'] = self.predictor(out['projection'])
    if self.head is not None:
      out['concentrations'] = self.head(representation)
    return out


class TargetNetwork(nn.Module):
  """The BYOL target: an EMA copy of the online encoder and projector."""

  def __init__(self, online: GalaxyModel):
    super().__init__()
    self.encoder = _copy(online.encoder)
    self.projector = _copy(online.projector)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.projector(self.encoder(x))

  @torch.no_grad()
  def follow(self, online: GalaxyModel, tau: float) -> None:
    """target <- tau target + (1 - tau) online (parameters, not BN stats)."""
    mine = list(self.encoder.parameters()) + list(self.projector.parameters())
    theirs = (list(online.encoder.parameters()) +
              list(online.projector.parameters()))
    torch._foreach_mul_(mine, tau)
    torch._foreach_add_(mine, theirs, alpha=1.0 - tau)


def _copy(module: nn.Module) -> nn.Module:
  import copy
  clone = copy.deepcopy(module)
  for p in clone.parameters():
    p.requires_grad_(False)
  return clone


def synthetic_batch(spec: PeerSpec) -> dict[str, torch.Tensor]:
  """Random images in [0, 1] (uint8 steps) and 0-9 votes, NCHW."""
  generator = torch.Generator().manual_seed(spec.seed)
  shape = (spec.batch_size, spec.channels, spec.image_size, spec.image_size)

  def images():
    return torch.randint(0, 256, shape, generator=generator).float() / 255.0

  batch = {'image': images(),
           'votes': torch.randint(0, 10, (spec.batch_size,
                                          len(spec.answer_question_index)),
                                  generator=generator).float()}
  if spec.objective != 'supervised':
    batch['image_2'] = images()
  return batch


def loss_fn(model: GalaxyModel, target: Optional[TargetNetwork],
            batch: dict[str, torch.Tensor], spec: PeerSpec,
            question_index: torch.Tensor) -> torch.Tensor:
  """The objective's loss, term for term as gzevo_jax.train computes it."""
  num_questions = int(question_index.max()) + 1

  def supervised(votes, concentrations):
    return dirichlet_multinomial_nll(votes, concentrations, question_index,
                                     num_questions).sum(-1).mean()

  if spec.objective == 'supervised':
    return supervised(batch['votes'], model(batch['image'])['concentrations'])
  views = torch.cat([batch['image'], batch['image_2']])  # One stacked pass.
  out = model(views)
  with torch.no_grad():
    target_1, target_2 = target(views).chunk(2)
  pred_1, pred_2 = out['prediction'].chunk(2)
  byol = byol_loss(pred_1, pred_2, target_1, target_2, spec.byol_form)
  if spec.objective == 'contrastive':
    return byol
  if spec.supervised_views == 'both':
    sup = supervised(torch.cat([batch['votes'], batch['votes']]),
                     out['concentrations'])
  else:
    sup = supervised(batch['votes'], out['concentrations'].chunk(2)[0])
  factor = spec.supervised_weight
  if spec.rescale_supervised:
    factor = (factor * byol.detach().abs() / sup.detach()
              if sup.item() > 0 else 0.0)
  return byol + factor * sup


def make_step(spec: PeerSpec) -> Callable[[], float]:
  """One training step on a fixed synthetic batch; returns the loss."""
  if spec.threads:
    torch.set_num_threads(spec.threads)
  torch.manual_seed(spec.seed)
  model = GalaxyModel(spec).train()
  target = (TargetNetwork(model).train()
            if spec.objective != 'supervised' else None)
  optimizer = make_optimizer(list(model.parameters()), spec)
  batch = synthetic_batch(spec)
  question_index = torch.as_tensor(list(spec.answer_question_index),
                                   dtype=torch.long)

  def step() -> float:
    optimizer.zero_grad()
    loss = loss_fn(model, target, batch, spec, question_index)
    loss.backward()
    optimizer.step()
    if target is not None:
      target.follow(model, spec.tau)
    return float(loss.detach())

  return step


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--objective', default='hybrid',
                      choices=('supervised', 'contrastive', 'hybrid'))
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--image_size', type=int, default=64)
  parser.add_argument('--width_multiplier', type=float, default=0.25)
  parser.add_argument('--num_answers', type=int, default=206)
  parser.add_argument('--steps', type=int, default=10)
  args = parser.parse_args(argv)
  # Equal-sized questions of 2-3 answers: the loss's cost, not its tree.
  index = [i // 3 for i in range(args.num_answers)]
  spec = PeerSpec(objective=args.objective, batch_size=args.batch_size,
                  image_size=args.image_size, channels=3,
                  answer_question_index=index,
                  width_multiplier=args.width_multiplier)
  times = time_alternating({'torch': make_step(spec)}, args.steps,
                           warmup=2)['torch']
  seconds = sorted(times)[len(times) // 2]
  print(f'torch {torch.__version__}, {torch.get_num_threads()} threads: '
        f'{args.objective} step {seconds * 1e3:.1f} ms (median of '
        f'{args.steps}), {math.floor(args.batch_size / seconds)} galaxies/s')


if __name__ == '__main__':
  main()
