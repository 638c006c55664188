#!/usr/bin/env python3
"""Runs an MPI launcher so that SIGTERM makes `pref fit` checkpoint instead of aborting the job.

    python3 jobs/slurm/term_shield.py mpirun -np 4 pref fit ... --checkpoint-dir DIR --resume

Open MPI 4.1's mpirun aborts the job on SIGTERM: it sends the ranks SIGCONT, SIGTERM and
SIGKILL (odls_base_sigkill_timeout apart) and exits with 1, whatever the ranks exit with, and
SIGTERM cannot be added to the signals it forwards (ess_base_forward_signals refuses it). Slurm
sends SIGTERM to every process of a job at its time limit, on `scancel` and on preemption.
So this wrapper (docs/checkpoints.md, "Signals"):

  - starts the command with SIGTERM blocked. The mask is inherited across fork and exec, and
    mpirun keeps it (it installs handlers, it does not unblock), so a SIGTERM sent to mpirun
    stays pending and never reaches its abort handler. mpirun unblocks every signal in the
    ranks it starts, and `pref` unblocks SIGTERM and SIGUSR1 itself, so the ranks still get a
    SIGTERM sent to them (Slurm signals every process of the job);
  - turns SIGTERM and SIGUSR1 sent to itself into SIGUSR1 for the command, which mpirun
    forwards to every rank;
  - exits with the command's exit code (128 + N when a signal N ended it), so exit code 3
    ("stopped by a signal after a checkpoint") reaches the job script.

SIGINT (Ctrl-C) is left to the command: this wrapper waits for it. SIGKILL cannot be blocked:
after Slurm's KillWait everything ends anyway. The command must not rely on SIGTERM itself.
"""
import os
import signal
import subprocess
import sys

NAME = "term_shield"


def main() -> int:
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: {sys.argv[0]} COMMAND [ARGUMENT ...]\n\n{__doc__.strip()}", file=sys.stderr)
        return 2
    # Blocked before the fork, so no SIGTERM can reach the child before it is blocked there.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        child = subprocess.Popen(argv)
    except OSError as e:
        print(f"{NAME}: cannot run {argv[0]}: {e.strerror}", file=sys.stderr)
        return 127

    def forward(signum, _frame):
        print(f"{NAME}: received {signal.Signals(signum).name}: sending SIGUSR1 to {argv[0]} "
              f"(pid {child.pid})", file=sys.stderr, flush=True)
        try:
            os.kill(child.pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGUSR1, forward)
    signal.signal(signal.SIGINT, lambda *_: None)  # the command gets its own SIGINT
    # A SIGTERM that came while blocked is delivered now, to forward().
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    code = child.wait()  # (retried after each handler: PEP 475)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
