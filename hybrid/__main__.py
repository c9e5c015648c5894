"""``python -m hybrid`` (also ``torchrun --nproc_per_node=N -m hybrid train ...``)."""
from hybrid.cli import main

main()
