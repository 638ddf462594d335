"""One peer of the launcher tests (test_launcher.py): every documented call of
suite.py over the channels of the configuration fmirun passes.

    fmirun -n 3 --config direct.json -- /usr/bin/python3 tests/python/peer_program.py

Prints "peer <i> of <n>: ok" and exits 0 when every check passed; otherwise the
traceback goes to stderr and the exit status is 1 (fmirun then names the peer).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fmi  # noqa: E402
import suite  # noqa: E402


def main():
    expect = sys.argv[1] if len(sys.argv) > 1 else None
    with fmi.Communicator.from_env() as comm:
        if expect and expect not in comm.channels:
            raise SystemExit(f"channel {expect} not enabled: {comm.channels}")
        suite.run_all(comm)
        comm.barrier()
        print(f"peer {comm.peer_id} of {comm.num_peers}: ok", flush=True)


if __name__ == "__main__":
    main()
