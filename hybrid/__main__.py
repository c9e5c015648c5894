"""``python -m hybrid`` (also ``torchrun --nproc_per_node=N -m hybrid train ...``)."""
from hybrid.cli import program

if __name__ == "__main__":  # importing this module (the API reference does) runs nothing
    program()
