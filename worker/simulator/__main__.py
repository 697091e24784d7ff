"""`python -m worker.simulator`: the simulator in the foreground (compose's demo profile runs it)."""

from worker.simulator.server import main

main()
