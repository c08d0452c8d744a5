"""SIGTERM and SIGINT become "checkpoint at this step, then stop".

Preemptible TPU VMs and SLURM send SIGTERM some time before they take the
machine away; Ctrl-C sends SIGINT. Inside `StopRequests` neither kills the
process: the train loop asks `should_stop(step)` after every step and, when
it says so, saves a checkpoint and returns, so rerunning the same command
resumes from that step.

With several processes they must all stop at the same step, or the ones still
training wait forever in a collective. JAX's coordination service agrees on
that step (`multihost_utils.reached_preemption_sync_point`) for SIGTERM, so
SIGINT is forwarded to it as SIGTERM. A second SIGINT in a single process
stops at once (KeyboardInterrupt), for a loop stuck elsewhere.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils


class Stopped(SystemExit):
  """A run that a signal stopped after saving its checkpoint.

  A SystemExit with status 0: the command ends as the user asked (rerun to
  resume), and commands that go on to use the trained encoder (the
  ablation, the label-efficiency experiment) end too, instead of scoring a
  half-trained one.
  """

  def __init__(self, step: int):
    super().__init__(0)
    self.step = step


class StopRequests:
  """A context in which SIGTERM and SIGINT ask the train loop to stop."""

  def __init__(self) -> None:
    self._requested: str | None = None
    self._previous: dict[int, Any] = {}
    self._multi_process = jax.process_count() > 1

  def _on_signal(self, signum: int, frame: Any) -> None:
    del frame
    name = signal.Signals(signum).name
    if self._multi_process:  # Only SIGINT comes here: hand it to JAX.
      logging.warning('%s: asking all processes to checkpoint and stop', name)
      os.kill(os.getpid(), signal.SIGTERM)
      return
    if self._requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    logging.warning('%s: will checkpoint after this step and stop (send '
                    'SIGINT again to stop at once)', name)
    self._requested = name

  def __enter__(self) -> 'StopRequests':
    # With several processes JAX's preemption notifier owns SIGTERM.
    signums = ((signal.SIGINT,) if self._multi_process else
               (signal.SIGTERM, signal.SIGINT))
    for signum in signums:
      self._previous[signum] = signal.signal(signum, self._on_signal)
    return self

  def __exit__(self, *exc: Any) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  def should_stop(self, step: int) -> bool:
    """Whether to checkpoint and stop after `step` (the same on every process).

    Every process must call this at every step, in order.
    """
    if self._multi_process:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._requested is not None
