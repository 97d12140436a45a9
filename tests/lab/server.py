"""A tiny HTTP and TLS server for the namespace world (``python -m tests.lab.server``).

Listens on every address (0.0.0.0) on port 80 (HTTP) and 443 (TLS with a throwaway
certificate from trustme); answers any request with a short page.  Prints ``READY``.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading

import trustme

PAGE = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nhello world\n"


class Handler(socketserver.BaseRequestHandler):
    ctx: ssl.SSLContext | None = None

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5)
        try:
            if self.ctx is not None:
                sock = self.ctx.wrap_socket(sock, server_side=True)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 8192:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                data += chunk
            sock.sendall(PAGE)
        except (OSError, ssl.SSLError):
            return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 512


def main() -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("control.example", "blocked.example", "srvblock.example")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    tls_handler = type("TlsHandler", (Handler,), {"ctx": ctx})
    servers = [Server(("0.0.0.0", 80), Handler), Server(("0.0.0.0", 443), tls_handler)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("READY", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
