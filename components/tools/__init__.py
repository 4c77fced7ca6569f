"""Commands around the program, never part of what it deploys: the offline render and its diff,
checks against a running stack, the benchmark, the image pin checks and the policy pack."""
