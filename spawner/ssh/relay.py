"""Run in the user's container for each `ssh -L` connection, as `python3 -c <this file> PORT`.

Connects to PORT on the container's own loopback and copies bytes both ways until either side
closes; a refused port becomes a sentence on stderr. Standard library only: it runs with the
image's Python, not the hub's.
"""

import os
import socket
import sys
import threading


def main(port: int) -> None:
    s, err = None, None
    for host in ("127.0.0.1", "::1"):
        try:
            s = socket.create_connection((host, port), timeout=10)
            break
        except OSError as e:
            err = e
    if s is None:
        sys.stderr.write(f"Nothing accepts connections on port {port} in your server ({err}).\n")
        sys.exit(1)
    s.settimeout(None)

    def upstream() -> None:
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            s.sendall(data)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    threading.Thread(target=upstream, daemon=True).start()
    out = sys.stdout.buffer
    while True:
        data = s.recv(65536)
        if not data:
            break
        out.write(data)
        out.flush()


if __name__ == "__main__":
    main(int(sys.argv[1]))
