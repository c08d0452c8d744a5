"""The launch scripts: syntax, required variables and the commands they run.

Nothing here reaches a network or a scheduler: gcloud and sbatch commands are
only printed (DRY_RUN=1), and srun, scancel, scontrol and python are replaced
by small fakes where a script's own process handling is under test.
"""

import os
import re
import shlex
import signal
import stat
import subprocess
import textwrap
import time

import pytest

from conftest import REPO_ROOT

LAUNCH = os.path.join(REPO_ROOT, 'launch')
SCRIPTS = ('local.sh', 'tpu_pod.sh', 'slurm.sbatch', 'build_dataset.sh',
           'tpu_worker_setup.sh')
# Variables the scripts read, cleared so the caller's environment can't leak.
_VARIABLES = ('CONFIG', 'WORKDIR', 'DATA_DIR', 'EXTRA_ARGS', 'DRY_RUN',
              'TPU_NAME', 'ZONE', 'ACCELERATOR_TYPE', 'PROJECT',
              'RUNTIME_VERSION', 'SPOT', 'KEEP_TPU', 'REPO_URL', 'REPO_REF',
              'REMOTE_DIR', 'NUM_PROCESSES', 'CPU_DEVICES', 'PORT', 'DATASET',
              'MANUAL_DIR', 'WORKERS', 'BEAM_OPTIONS', 'SKIP_BAD_ROWS',
              'VENV', 'SRUN_ARGS', 'REPO_DIR', 'XLA_FLAGS', 'JAX_PLATFORMS')

TPU_VARS = dict(TPU_NAME='gz-pod', ZONE='us-central2-b',
                ACCELERATOR_TYPE='v4-32', CONFIG='configs/hybrid.py:gz_evo',
                WORKDIR='gs://bucket/runs/hybrid')


def _env(path_prefix=None, **variables):
  env = {k: v for k, v in os.environ.items()
         if k not in _VARIABLES and not k.startswith('SLURM_')}
  if path_prefix:
    env['PATH'] = f'{path_prefix}{os.pathsep}{env["PATH"]}'
  env.update(variables)
  return env


def _run(script, *args, cwd=REPO_ROOT, path_prefix=None, **variables):
  return subprocess.run(['bash', os.path.join(LAUNCH, script), *args],
                        cwd=cwd, env=_env(path_prefix, **variables),
                        capture_output=True, text=True, timeout=60)


def _commands(stdout):
  """The printed commands ('+ ...' lines), each split into its words."""
  return [shlex.split(line[2:]) for line in stdout.splitlines()
          if line.startswith('+ ')]


def _fake(directory, name, body):
  path = directory / name
  path.write_text('#!/usr/bin/env bash\n' + textwrap.dedent(body))
  path.chmod(0o755)


def _wait_for(*paths, timeout=20):
  deadline = time.monotonic() + timeout
  while not all(p.exists() and p.stat().st_size for p in paths):
    assert time.monotonic() < deadline, f'not all of {paths} appeared'
    time.sleep(0.02)


@pytest.mark.parametrize('script', SCRIPTS + ('common.sh',))
def test_bash_syntax(script):
  result = subprocess.run(['bash', '-n', os.path.join(LAUNCH, script)],
                          capture_output=True, text=True)
  assert result.returncode == 0, result.stderr


@pytest.mark.parametrize('script', SCRIPTS)
def test_executable(script):
  assert os.stat(os.path.join(LAUNCH, script)).st_mode & stat.S_IXUSR


@pytest.mark.parametrize('script', ('local.sh', 'tpu_pod.sh', 'slurm.sbatch',
                                    'build_dataset.sh'))
def test_help_prints_usage(script):
  result = _run(script, '--help')
  assert result.returncode == 0
  assert 'Required:' in result.stdout
  assert 'DRY_RUN=1' in result.stdout
  assert '#SBATCH --' not in result.stdout


@pytest.mark.parametrize('script, args, variables, missing', [
    ('local.sh', (), {}, ['CONFIG']),
    ('tpu_pod.sh', (), {}, ['TPU_NAME', 'ZONE', 'ACCELERATOR_TYPE', 'CONFIG',
                            'WORKDIR']),
    ('tpu_pod.sh', (), dict(TPU_NAME='t', ZONE='z', CONFIG='c'),
     ['ACCELERATOR_TYPE', 'WORKDIR']),
    ('tpu_pod.sh', ('delete',), {}, ['TPU_NAME', 'ZONE']),
    ('slurm.sbatch', (), {}, ['CONFIG', 'WORKDIR']),
    ('slurm.sbatch', (), dict(CONFIG='c'), ['WORKDIR']),
    ('build_dataset.sh', (), {}, ['DATASET']),
    ('build_dataset.sh', (), dict(DATASET='gz_evo/real'), ['MANUAL_DIR']),
    ('build_dataset.sh', (), dict(DATASET='gz_rings/real'), ['MANUAL_DIR']),
])
def test_missing_variables_are_named(script, args, variables, missing):
  result = _run(script, *args, DRY_RUN='1', **variables)
  assert result.returncode != 0
  line = next(l for l in result.stderr.splitlines()
              if 'missing required variable' in l)
  assert line.split(': ')[-1].split() == missing
  for name in missing:
    assert re.search(rf'^  {name}: ', result.stderr, re.M)
  assert '+ ' not in result.stdout


def test_delete_step_needs_no_run_variables():
  result = _run('tpu_pod.sh', 'delete', DRY_RUN='1', TPU_NAME='t', ZONE='z')
  assert result.returncode == 0, result.stderr
  assert _commands(result.stdout) == [
      ['gcloud', 'compute', 'tpus', 'tpu-vm', 'delete', 't', '--zone=z',
       '--quiet']]


def test_tpu_pod_dry_run_prints_every_step():
  result = _run('tpu_pod.sh', DRY_RUN='1', SPOT='1', PROJECT='my-project',
                DATA_DIR='gs://bucket/tfds', EXTRA_ARGS='--config.seed=3',
                **TPU_VARS)
  assert result.returncode == 0, result.stderr
  commands = _commands(result.stdout)
  gcloud = [c for c in commands if c[0] == 'gcloud']
  assert [c[4] for c in gcloud] == ['create', 'scp', 'ssh', 'ssh', 'delete']
  create, scp, setup, run, delete = gcloud
  assert create[5] == 'gz-pod'
  for flag in ('--zone=us-central2-b', '--project=my-project',
               '--accelerator-type=v4-32', '--version=tpu-ubuntu2204-base',
               '--spot'):
    assert flag in create
  assert '--worker=all' in scp and scp[-4] == 'gz-pod:gzevo_jax_src.tar.gz'
  assert '--worker=all' in setup
  assert 'gzevo_jax/launch/tpu_worker_setup.sh gzevo_jax-venv' in setup[-1]
  assert '--worker=all' in run
  assert run[-1].startswith('--command=')
  remote = shlex.split(run[-1][len('--command='):])
  main = remote[remote.index('python'):]
  assert main == ['python', '-m', 'gzevo_jax.main',
                  '--config=configs/hybrid.py:gz_evo',
                  '--workdir=gs://bucket/runs/hybrid', '--distributed=on',
                  '--config.data.data_dir=gs://bucket/tfds', '--config.seed=3']
  assert delete[5:] == ['gz-pod', '--zone=us-central2-b',
                        '--project=my-project', '--quiet']


def test_tpu_pod_keep_tpu_and_repo_url():
  result = _run('tpu_pod.sh', DRY_RUN='1', KEEP_TPU='1',
                REPO_URL='https://example.com/gzevo_jax.git', REPO_REF='v1',
                **TPU_VARS)
  assert result.returncode == 0, result.stderr
  gcloud = [c for c in _commands(result.stdout) if c[0] == 'gcloud']
  assert [c[4] for c in gcloud] == ['create', 'ssh', 'ssh']
  assert ('git clone https://example.com/gzevo_jax.git gzevo_jax && '
          'git -C gzevo_jax checkout v1') in gcloud[1][-1]
  assert 'still running' in result.stdout


@pytest.mark.parametrize('accelerator, version', [
    ('v4-32', 'tpu-ubuntu2204-base'), ('v5litepod-16', 'v2-alpha-tpuv5-lite'),
    ('v5p-64', 'v2-alpha-tpuv5'), ('v6e-16', 'v2-alpha-tpuv6e')])
def test_tpu_pod_runtime_version_default(accelerator, version):
  result = _run('tpu_pod.sh', 'create', DRY_RUN='1', TPU_NAME='t', ZONE='z',
                ACCELERATOR_TYPE=accelerator)
  assert f'--version={version}' in _commands(result.stdout)[0]
  result = _run('tpu_pod.sh', 'create', DRY_RUN='1', TPU_NAME='t', ZONE='z',
                ACCELERATOR_TYPE=accelerator, RUNTIME_VERSION='mine')
  assert '--version=mine' in _commands(result.stdout)[0]


@pytest.mark.parametrize('workdir', ['runs/hybrid', '/shared/runs',
                                     's3://bucket/runs'])
def test_tpu_pod_rejects_workdir_not_on_gcs(workdir):
  result = _run('tpu_pod.sh', DRY_RUN='1', **{**TPU_VARS, 'WORKDIR': workdir})
  assert result.returncode != 0
  assert 'WORKDIR must start with gs://' in result.stderr
  assert '+ ' not in result.stdout


def test_tpu_pod_rejects_unknown_step():
  result = _run('tpu_pod.sh', 'launch', DRY_RUN='1', **TPU_VARS)
  assert result.returncode != 0
  assert "unknown step 'launch'" in result.stderr


def test_local_single_process_dry_run():
  result = _run('local.sh', '--config.seed=2', DRY_RUN='1',
                CONFIG='configs/hybrid.py:smoke', CPU_DEVICES='4',
                WORKDIR='runs/x')
  assert result.returncode == 0, result.stderr
  words = shlex.split(result.stdout.split(': ', 1)[1])
  assert words[:4] == ['XLA_FLAGS=--xla_force_host_platform_device_count=4',
                       'JAX_PLATFORMS=cpu', 'python', '-m']
  assert words[5:8] == ['--config=configs/hybrid.py:smoke',
                        '--workdir=runs/x', '--config.seed=2']


def test_local_two_processes_dry_run():
  result = _run('local.sh', '--config.seed=2', DRY_RUN='1', NUM_PROCESSES='2',
                CPU_DEVICES='2', CONFIG='configs/hybrid.py:smoke')
  assert result.returncode == 0, result.stderr
  lines = [l for l in result.stdout.splitlines() if l.startswith('+ ')]
  assert [l.split()[1] for l in lines] == ['[p0]', '[p1]']
  port = re.search(r'localhost:(\d+)', result.stdout).group(1)
  for i, line in enumerate(lines):
    words = shlex.split(line)[2:]
    assert words == [
        'XLA_FLAGS=--xla_force_host_platform_device_count=2',
        'JAX_PLATFORMS=cpu', 'python', '-m', 'gzevo_jax.main',
        '--config=configs/hybrid.py:smoke',
        f'--coordinator_address=localhost:{port}', '--num_processes=2',
        f'--process_id={i}', '--config.seed=2']


def test_local_rejects_bad_num_processes():
  result = _run('local.sh', DRY_RUN='1', NUM_PROCESSES='two', CONFIG='c')
  assert result.returncode != 0
  assert 'NUM_PROCESSES' in result.stderr


_FAKE_PYTHON = """\
id=none
for a in "$@"; do case "$a" in --process_id=*) id="${a#*=}" ;; esac; done
trap 'echo "got TERM at $step"; exit 0' TERM
echo "start JAX_PLATFORMS=${JAX_PLATFORMS:-}"
if [[ -n "${STARTED:-}" ]]; then echo "$$" > "${STARTED}.${id}"; fi
if [[ "$id" == "${FAIL:-}" ]]; then echo boom >&2; exit 3; fi
for (( step = 1; step <= ${STEPS:-2}; step++ )); do sleep 0.05; done
echo "done $step"
"""


def test_local_processes_are_prefixed_and_failures_reported(tmp_path):
  _fake(tmp_path, 'python', _FAKE_PYTHON)
  ok = _run('local.sh', path_prefix=tmp_path, NUM_PROCESSES='3', PORT='9',
            CPU_DEVICES='2', CONFIG='c')
  assert ok.returncode == 0, ok.stderr
  for i in range(3):
    assert f'[p{i}] start JAX_PLATFORMS=cpu\n' in ok.stdout
    assert f'[p{i}] done' in ok.stdout
  failed = _run('local.sh', path_prefix=tmp_path, NUM_PROCESSES='2',
                PORT='9', CONFIG='c', FAIL='1')
  assert failed.returncode != 0
  assert '[p1] boom' in failed.stdout  # stderr is prefixed too.
  assert '[p0] done' in failed.stdout  # The others still run to the end.
  assert 'failed: p1 (exit status 3)' in failed.stderr


def test_local_forwards_sigterm_to_every_process(tmp_path):
  _fake(tmp_path, 'python', _FAKE_PYTHON)
  proc = subprocess.Popen(
      ['bash', os.path.join(LAUNCH, 'local.sh')], cwd=REPO_ROOT,
      env=_env(tmp_path, NUM_PROCESSES='2', PORT='9', CONFIG='c',
               STEPS='400', STARTED=str(tmp_path / 'started')),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _wait_for(tmp_path / 'started.0', tmp_path / 'started.1')
  proc.send_signal(signal.SIGTERM)
  stdout, stderr = proc.communicate(timeout=30)
  assert proc.returncode == 0, stderr
  assert '[p0] got TERM' in stdout and '[p1] got TERM' in stdout
  assert 'done' not in stdout


def test_build_dataset_local_beam_dry_run(tmp_path):
  result = _run('build_dataset.sh', '--skip_bad_rows', cwd=tmp_path,
                DRY_RUN='1', DATASET='gz_evo/real', MANUAL_DIR='download',
                DATA_DIR='tfds', WORKERS='8')
  assert result.returncode == 0, result.stderr
  [command] = _commands(result.stdout)
  assert command == [
      'python', '-m', 'gzevo_jax.data.build', '--dataset=gz_evo/real',
      f'--manual_dir={tmp_path}/download', f'--data_dir={tmp_path}/tfds',
      '--beam_pipeline_options=runner=DirectRunner,direct_num_workers=8,'
      'direct_running_mode=multi_processing', '--skip_bad_rows']
  one = _run('build_dataset.sh', DRY_RUN='1', DATASET='gz_evo/synthetic',
             WORKERS='1')
  assert _commands(one.stdout)[0][4:] == [
      '--beam_pipeline_options=runner=DirectRunner,direct_num_workers=1']


def test_build_dataset_on_dataflow_needs_gcs_data_dir():
  options = ('runner=DataflowRunner,project=p,region=us-central1,'
             'temp_location=gs://bucket/tmp,setup_file=./setup.py')
  result = _run('build_dataset.sh', DRY_RUN='1', SKIP_BAD_ROWS='1',
                DATASET='gz_evo/synthetic_large', BEAM_OPTIONS=options,
                DATA_DIR='gs://bucket/tfds')
  assert result.returncode == 0, result.stderr
  assert _commands(result.stdout) == [[
      'python', '-m', 'gzevo_jax.data.build',
      '--dataset=gz_evo/synthetic_large', '--data_dir=gs://bucket/tfds',
      '--skip_bad_rows', f'--beam_pipeline_options={options}']]
  local = _run('build_dataset.sh', DRY_RUN='1', DATA_DIR='tfds',
               DATASET='gz_evo/synthetic_large', BEAM_OPTIONS=options)
  assert local.returncode != 0
  assert 'DATA_DIR' in local.stderr and 'gs://' in local.stderr


_SLURM_JOB = dict(SLURM_JOB_ID='77', SLURM_NNODES='2', SLURM_NTASKS='8',
                  SLURM_NTASKS_PER_NODE='4', SLURM_GPUS_PER_NODE='4',
                  SLURM_SUBMIT_DIR=REPO_ROOT)


def test_slurm_header_defaults():
  with open(os.path.join(LAUNCH, 'slurm.sbatch')) as f:
    header = dict(re.findall(r'^#SBATCH --([\w-]+)(?:=(\S+))?', f.read(),
                             re.M))
  assert header['ntasks-per-node'] == header['gpus-per-node']
  assert 'gpus-per-task' not in header
  assert header['signal'].startswith('B:USR1@')
  assert 'requeue' in header
  assert header['output'] == 'slurm-%j.out'
  assert header['open-mode'] == 'append'


def test_slurm_dry_run_prints_srun():
  outside = _run('slurm.sbatch', '--config.seed=1', DRY_RUN='1',
                 CONFIG='configs/hybrid.py:gz_evo', WORKDIR='runs/shared')
  assert outside.returncode == 0, outside.stderr
  inside = _run('slurm.sbatch', '--config.seed=1', DRY_RUN='1',
                CONFIG='configs/hybrid.py:gz_evo', WORKDIR='runs/shared',
                DATA_DIR='tfds', SRUN_ARGS='--gpu-bind=none', **_SLURM_JOB)
  assert inside.returncode == 0, inside.stderr
  assert 'job 77: 2 nodes, 8 tasks' in inside.stdout
  assert _commands(outside.stdout) == [[
      'srun', '--kill-on-bad-exit=1', 'python', '-m', 'gzevo_jax.main',
      '--config=configs/hybrid.py:gz_evo', '--workdir=runs/shared',
      '--config.seed=1']]
  assert _commands(inside.stdout) == [[
      'srun', '--kill-on-bad-exit=1', '--gpu-bind=none', 'python', '-m',
      'gzevo_jax.main', '--config=configs/hybrid.py:gz_evo',
      '--workdir=runs/shared', '--config.data.data_dir=tfds',
      '--config.seed=1']]


def test_slurm_outside_a_job_fails_without_dry_run():
  result = _run('slurm.sbatch', CONFIG='c', WORKDIR='w')
  assert result.returncode != 0
  assert 'not inside a Slurm job' in result.stderr


def test_slurm_warns_when_tasks_and_gpus_per_node_differ():
  result = _run('slurm.sbatch', DRY_RUN='1', CONFIG='c', WORKDIR='w',
                **{**_SLURM_JOB, 'SLURM_GPUS_PER_NODE': 'h100:8'})
  assert 'warning: 4 tasks per node but 8 GPUs per node' in result.stdout


def _fake_slurm(tmp_path):
  """srun runs a task until SIGTERM; scancel signals it; calls are logged."""
  log = tmp_path / 'calls.log'
  _fake(tmp_path, 'srun', f"""\
      echo "srun $*" >> {log}
      trap 'echo "task saved a checkpoint"; exit 0' TERM
      echo $$ > {tmp_path}/srun.pid
      for (( i = 0; i < ${{STEPS:-400}}; i++ )); do sleep 0.05; done
      echo "task finished"
      """)
  _fake(tmp_path, 'scancel', f"""\
      echo "scancel $*" >> {log}
      kill -TERM "$(cat {tmp_path}/srun.pid)"
      """)
  _fake(tmp_path, 'scontrol', f'echo "scontrol $*" >> {log}\n')
  return log


def test_slurm_time_limit_warning_checkpoints_and_requeues(tmp_path):
  log = _fake_slurm(tmp_path)
  proc = subprocess.Popen(
      ['bash', os.path.join(LAUNCH, 'slurm.sbatch')], cwd=tmp_path,
      env=_env(tmp_path, CONFIG='c', WORKDIR='w', **_SLURM_JOB),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _wait_for(tmp_path / 'srun.pid')
  proc.send_signal(signal.SIGUSR1)  # What --signal=B:USR1@300 sends.
  stdout, stderr = proc.communicate(timeout=30)
  assert proc.returncode == 0, stderr
  assert 'task saved a checkpoint' in stdout
  assert log.read_text().splitlines() == [
      'srun --kill-on-bad-exit=1 python -m gzevo_jax.main --config=c '
      '--workdir=w',
      'scancel --signal=TERM 77',
      'scontrol requeue 77']


def test_slurm_finished_run_is_not_requeued(tmp_path):
  log = _fake_slurm(tmp_path)
  result = _run('slurm.sbatch', cwd=tmp_path, path_prefix=tmp_path,
                CONFIG='c', WORKDIR='w', STEPS='2', **_SLURM_JOB)
  assert result.returncode == 0, result.stderr
  assert 'task finished' in result.stdout
  assert [l.split()[0] for l in log.read_text().splitlines()] == ['srun']
