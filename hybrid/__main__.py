"""``python -m hybrid`` (also ``torchrun --nproc_per_node=N -m hybrid train ...``)."""
from hybrid.cli import main

if __name__ == "__main__":  # importing this module (the API reference does) runs nothing
    main()
