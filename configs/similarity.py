r"""Embeddings, similarity search and anomaly ranking from a checkpoint.

  python -m gzevo_jax.main --config=configs/similarity.py \
      --config.pretrained_workdir=runs/hybrid \
      --config.query_ids="('ID_1', 'ID_2')"
  python -m gzevo_jax.evaluation.similarity \
      --config=configs/similarity.py:smoke \
      --config.pretrained_workdir=runs/hybrid_smoke

Writes embeddings.npy, embeddings.parquet, neighbours.csv, neighbours_<id>.png
per query, anomalies.png and anomalies.csv to the workdir (default
runs/<run_name>_<name of the pretrained workdir>).
"""

from gzevo_jax import config_lib


def smoke(config):
  """Seconds: the tiny GZ-Evo dataset."""
  config.data.dataset = 'gz_evo/synthetic_tiny'
  config.num_anomalies = 12


def get_config(arg=None):
  c = config_lib.encoder_evaluation_config('similarity')
  c.data.dataset = 'gz_evo/synthetic'  # Any dataset with id_str and image.
  c.data.split = 'test'  # The galaxies searched and ranked.
  c.query_ids = ()  # id_str of each galaxy to find neighbours of.
  c.num_neighbours = 8  # Shown after each query, most similar first.
  c.anomaly_k = 10  # Score: cosine distance to the k-th neighbour.
  c.num_anomalies = 24  # Highest-scoring galaxies in anomalies.png.
  return config_lib.apply_variant(c, arg, {'smoke': smoke})
