"""`python -m onnxviz ...`: the same command line as the `onnxviz` script."""
from .cli import main

main(prog_name="onnxviz")
