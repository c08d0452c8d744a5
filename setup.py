"""gzevo_jax: galaxy foundation models on GZ-Evo in JAX/Flax."""

import setuptools

setuptools.setup(
    name='gzevo_jax',
    version='0.1.0',
    description=('Pretrain galaxy foundation models on GZ-Evo with BYOL, a '
                 'Dirichlet-Multinomial vote loss, or both, in JAX/Flax.'),
    license='Apache-2.0',
    python_requires='>=3.11',  # jax>=0.7 needs 3.11.
    packages=setuptools.find_packages(include=['gzevo_jax', 'gzevo_jax.*']),
    package_data={'gzevo_jax': ['schemas/*.json']},
    install_requires=[
        'absl-py>=1.0',
        'flax>=0.10',
        'jax>=0.7.0',  # jax.shard_map with check_vma.
        'jaxlib>=0.7.0',
        'ml-collections>=0.1.1',
        'numpy>=1.26',
        'optax>=0.2.5',  # optax.tree.norm.
        'orbax-checkpoint>=0.11',
        # Linear probes and classification metrics.
        'scikit-learn>=1.3',
        # TensorBoard event files without TensorFlow (accelerator hosts).
        'tensorboardX>=2.6',
        # Data input only; imported lazily by gzevo_jax.data.
        'tensorflow>=2.16',
        'tensorflow-datasets>=4.9',
        # TF-free input for accelerator hosts: config.data.source='grain'
        # reads the datasets' array_record files (array_record comes with it).
        'grain>=0.2.12',
        # TFDS's etils.epath needs it to build datasets but does not require it.
        'importlib_resources',
        # Real catalogues: parquet/CSV tables and JPG/PNG images.
        'pyarrow>=14',
        'pillow>=10',
        # FITS images for configs/predict.py (read with astropy.io.fits).
        'astropy>=6',
        # Vote-prediction metrics and intervals (betabinom, betaincinv).
        'scipy>=1.11',
        # Picture grids and plots.
        'matplotlib>=3.7',
    ],
    extras_require={
        # Dataset generation on Apache Beam (DirectRunner or a cluster).
        'beam': ['apache-beam>=2.50'],
        # benchmarks/torch_peer.py (python -m gzevo_jax.benchmark --peer=torch):
        # install the CPU build first, see README.
        'peer': ['torch>=2.2'],
        'test': ['pytest>=7', 'pytest-xdist>=3', 'scipy>=1.11', 'apache-beam>=2.50'],
    },
)
