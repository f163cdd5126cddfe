"""``python -m culturelab.generation COMMAND ...``: the generate commands on their own, which is how torchrun
starts data-parallel training (``torchrun --nproc_per_node N -m culturelab.generation train ...``)."""

from culturelab.generation.cli import generate

generate(prog_name="python -m culturelab.generation")
