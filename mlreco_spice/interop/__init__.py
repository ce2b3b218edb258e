"""Coming from SPINE or lartpc_mlreco3d: their configs and checkpoints, used here.

* :mod:`.translation` keeps the key-by-key record of a config translation;
* :mod:`.shapes` maps larcv/SPINE shape names and per-shape thresholds to our classes;
* :mod:`.spine_config` and :mod:`.mlreco3d_config` translate each peer's SPICE config;
* :mod:`.peer_blocks` holds what the two translators share (network, clusterer, loss);
* :mod:`.import_config` detects the peer and writes our chain config
  (``mlreco-spice import-config``);
* :mod:`.spine_checkpoint` detects SPINE checkpoints and renames their parameters.

Nothing here imports SPINE: the peers' formats are read as plain data.
"""
