"""``python -m mlreco_spice`` (used by ``torchrun -m mlreco_spice train ...``)."""
import sys

from .cli import main

sys.exit(main())
