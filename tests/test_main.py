"""The command line, run as a user would, and the TensorFlow-free core."""

import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


def run_main(*args, env_extra=None):
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)  # One CPU device, as on a laptop (by default).
  env.update(env_extra or {})
  return subprocess.run([sys.executable, '-m', 'gzevo_jax.main', *args],
                        cwd=REPO_ROOT, env=env, capture_output=True,
                        text=True, timeout=600)


def test_main_runs_smoke_config_end_to_end(tmp_path):
  workdir = tmp_path / 'run'
  result = run_main('--config=configs/supervised.py:smoke',
                    f'--workdir={workdir}', '--config.train_duration=4 steps',
                    '--config.log_every_steps=2', '--config.data.image_size=16')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'finished 4 steps' in result.stderr
  assert (workdir / 'metrics.jsonl').exists()
  assert (workdir / 'checkpoints' / '4').is_dir()


def test_unknown_config_field_lists_valid_fields():
  result = run_main('--config=configs/hybrid.py:smoke',
                    '--config.model.encodr=x')
  assert result.returncode != 0
  assert "unknown config field 'model.encodr'" in result.stderr
  assert 'width_multiplier' in result.stderr


def test_unknown_model_lists_valid_models(tmp_path):
  result = run_main('--config=configs/hybrid.py:smoke',
                    f'--workdir={tmp_path}', '--config.model.encoder=vit')
  assert result.returncode != 0
  assert 'convnext_nano, convnext_tiny, resnet18, resnet50' in result.stderr


def test_core_modules_do_not_import_tensorflow():
  code = ('import sys\n'
          'import gzevo_jax.schema, gzevo_jax.losses, gzevo_jax.models, '
          'gzevo_jax.train, gzevo_jax.checkpoint, gzevo_jax.main, '
          'gzevo_jax.data.in_memory, gzevo_jax.data.user_images, '
          'gzevo_jax.data.grain_pipeline, gzevo_jax.data.sources, '
          'gzevo_jax.evaluation.predict\n'
          'bad = [m for m in sys.modules if m.split(".")[0] in '
          '("tensorflow", "tensorflow_datasets")]\n'
          'assert not bad, bad\n')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]


def test_real_data_not_built_says_how_to_build_it(tmp_path):
  result = run_main('--config=configs/hybrid.py:gz_evo',
                    f'--workdir={tmp_path}',
                    env_extra={'TFDS_DATA_DIR': str(tmp_path / 'tfds')})
  assert result.returncode != 0
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: dataset gz_evo/real is not built')
  assert 'python -m gzevo_jax.data.build --dataset=gz_evo/real' in last
  assert 'Traceback' not in result.stderr


def _bad_schema(tmp_path, text):
  path = tmp_path / 'schema.json'
  path.write_text(text)
  return f'--config.schema={path}'


# Each case a user can cause, as one `error:` line (no traceback), exit 1.
# `smoke` runs on the tiny synthetic data (built once per TFDS_DATA_DIR).
CLI_ERRORS = {
    'stray positional argument': (
        lambda tmp: ['extra'], {}, 'error: unexpected argument(s) extra'),
    'no training step': (
        lambda tmp: ["--config.train_duration=0 steps"], {},
        "error: config.train_duration='0 steps' trains for no step"),
    'schema file is not JSON': (
        lambda tmp: [_bad_schema(tmp, '{"name": ')], {}, 'not valid JSON'),
    'schema without campaigns or questions': (
        lambda tmp: [_bad_schema(tmp, '{"name": "mine"}')], {},
        'expected a "campaigns" or "questions" field'),
    'batch that does not split over the devices': (
        lambda tmp: ['--config.global_batch_size=6'],
        {'XLA_FLAGS': '--xla_force_host_platform_device_count=4'},
        'error: config.global_batch_size=6 does not split evenly over 4 '
        'devices'),
    'non-finite loss': (
        lambda tmp: ['--config.optimizer.base_learning_rate=1e30',
                     '--config.train_duration=8 steps',
                     '--config.log_every_steps=2'], {},
        'error: non-finite metrics at step'),
    'images too large for memory': (
        lambda tmp: ['--config.data.image_size=100000'], {},
        'error: config.data.image_size=100000 with a batch of'),
}


@pytest.mark.parametrize('case', sorted(CLI_ERRORS))
def test_user_errors_are_one_line(tmp_path, case):
  make_args, env, expected = CLI_ERRORS[case]
  result = run_main('--config=configs/hybrid.py:smoke',
                    f'--workdir={tmp_path / "run"}', *make_args(tmp_path),
                    env_extra=env)
  assert result.returncode == 1, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: '), last
  assert expected in last, last


# The other commands follow the same rule (cli.run).
OTHER_COMMAND_ERRORS = {
    'build: unknown dataset': (
        ['gzevo_jax.data.build', '--dataset=gz_evo/nonsense'],
        "error: unknown config 'nonsense' of gz_evo"),
    'pictures: stray argument': (
        ['gzevo_jax.data.pictures', 'galaxies'],
        'error: unexpected argument(s) galaxies'),
    'benchmark: stray argument': (
        ['gzevo_jax.benchmark', '--objectives=hybrid', 'fast'],
        'error: unexpected argument(s) fast'),
    'benchmark: unknown objective': (
        ['gzevo_jax.benchmark', '--objectives=hybird'],
        "error: --objectives: choose from"),
}


@pytest.mark.parametrize('case', sorted(OTHER_COMMAND_ERRORS))
def test_other_commands_print_one_error_line(tmp_path, case):
  args, expected = OTHER_COMMAND_ERRORS[case]
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  result = subprocess.run([sys.executable, '-m', *args], cwd=REPO_ROOT,
                          env=dict(env, TFDS_DATA_DIR=str(tmp_path)),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1].startswith(expected)
