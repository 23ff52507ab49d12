"""`python -m plantkit ...`: the plantkit command, for launchers that start modules
(`torchrun --nproc_per_node N -m plantkit train ...`)."""

from plantkit.commands.main import run

if __name__ == "__main__":
    run()
