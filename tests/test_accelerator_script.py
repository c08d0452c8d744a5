"""benchmarks/accelerator.sh, in its dry mode, on a host without TensorFlow."""

import json
import os
import subprocess

from conftest import REPO_ROOT
from gzevo_jax.data import build

# Imported first by every Python the script starts: TensorFlow and TFDS
# then cannot be imported, as on an accelerator host without them.
_NO_TENSORFLOW = ("import sys\n"
                  "sys.modules['tensorflow'] = None\n"
                  "sys.modules['tensorflow_datasets'] = None\n")


def test_dry_run_writes_every_part_without_tensorflow(tmp_path):
  data_dir = tmp_path / 'tfds'
  # Built where TensorFlow is, as the script's header says to.
  build.prepare('gz_evo/synthetic_tiny', str(data_dir), None,
                file_formats=['array_record'])
  blocker = tmp_path / 'blocker'
  blocker.mkdir()
  (blocker / 'sitecustomize.py').write_text(_NO_TENSORFLOW)
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env.update(TFDS_DATA_DIR=str(data_dir), PYTHONPATH=str(blocker))
  out = tmp_path / 'out'
  result = subprocess.run(
      ['bash', os.path.join('benchmarks', 'accelerator.sh'), '--dry',
       str(out)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
      timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = [json.loads(l) for l in
           (out / 'accelerator.jsonl').read_text().splitlines()]
  failed = [l for l in lines if 'failed' in l]
  assert not failed, [(out / f"{l['part']}.log").read_text()[-2000:]
                      for l in failed]
  steps = {(l['part'], l['objective']): l for l in lines if l['part'] != 'input'}
  assert set(steps) == {(p, o) for p in ('resnet50', 'default')
                        for o in ('supervised', 'contrastive', 'hybrid')}
  for (part, _), line in steps.items():
    assert line['step_s'] > 0 and line['flops_per_step_per_device'] > 0
    assert line['encoder'] == ('resnet50' if part == 'resnet50' else 'resnet18')
    assert line['dtype'] == ('bfloat16' if part == 'resnet50' else 'float32')
  inputs = [l for l in lines if l['part'] == 'input']
  assert len(inputs) == 1 and inputs[0]['source'] == 'grain'
  assert inputs[0]['images_per_s'] > 0
