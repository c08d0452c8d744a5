"""When a process joins a multi-process job, and the errors for bad flags."""

import pytest

from gzevo_jax import distributed


@pytest.mark.parametrize('mode, address, environ, expected', [
    ('auto', None, {}, False),
    ('auto', 'host:1234', {}, True),
    ('auto', None, {'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '8'}, True),
    ('auto', None, {'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '1'}, False),
    ('auto', None, {'SLURM_JOB_ID': '7'}, False),  # The batch script itself.
    ('auto', None, {'SLURM_NTASKS': '8'}, False),  # Not inside a Slurm job.
    ('auto', None, {'OMPI_COMM_WORLD_SIZE': '2'}, True),
    ('on', None, {}, True),
    ('off', None, {'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '8'}, False),
])
def test_should_initialize(mode, address, environ, expected):
  assert distributed.should_initialize(mode, address, environ) is expected


@pytest.mark.parametrize('mode, address, environ, message', [
    ('sometimes', None, {}, 'choose one of auto, on, off'),
    ('off', 'host:1234', {}, 'with --distributed=off'),
    ('auto', None, {'SLURM_JOB_ID': '7', 'SLURM_NTASKS': 'many'},
     "SLURM_NTASKS='many' is not a number"),
])
def test_bad_settings_are_named(mode, address, environ, message):
  with pytest.raises(ValueError, match=message):
    distributed.should_initialize(mode, address, environ)


@pytest.mark.parametrize('flags, message', [
    (('host:1234', 2, None), 'go together'),
    ((None, None, 0), 'go together'),
    (('host:1234', 2, 2), 'must be less than --num_processes=2'),
])
def test_explicit_flags_are_checked_before_joining(flags, message):
  with pytest.raises(ValueError, match=message):
    distributed.initialize('auto', *flags)


def test_a_single_process_does_not_join(monkeypatch):
  for key in ('SLURM_JOB_ID', 'SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE'):
    monkeypatch.delenv(key, raising=False)
  assert distributed.initialize() is False
