"""A minimal HTTP/1.1 server on raw sockets for the e2e tests, answering
each request with a different system call so that every write path the
agent traces is exercised:
  GET /write     os.write        GET /writev    os.writev (head, body)
  GET /sendmsg   sendmsg         GET /sendfile  head by send, body by
                                                sendfile(2) from a file
  GET /pause     head and 1000 body bytes, 1.6 s of silence, the rest
Requests are read with recvmsg. Keep-alive; prints "ready PORT"."""
import os
import socket
import sys
import tempfile
import threading
import time

BODY = b"x" * 3000


def answer(conn, path, blob):
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n" % len(BODY))
    fd = conn.fileno()
    if path == b"/write":
        os.write(fd, head + BODY)
    elif path == b"/writev":
        os.writev(fd, [head, BODY])
    elif path == b"/sendmsg":
        conn.sendmsg([head, BODY])
    elif path == b"/sendfile":
        conn.send(head)
        os.sendfile(fd, blob.fileno(), 0, len(BODY))
    elif path == b"/pause":
        os.write(fd, head + BODY[:1000])
        time.sleep(1.6)
        os.write(fd, BODY[1000:])
    else:
        os.write(fd, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


def serve(conn, blob):
    buf = b""
    while True:
        data, _, _, _ = conn.recvmsg(65536)
        if not data:
            break
        buf += data
        while b"\r\n\r\n" in buf:
            head, buf = buf.split(b"\r\n\r\n", 1)
            answer(conn, head.split(b" ")[1], blob)
    conn.close()


def main():
    blob = tempfile.TemporaryFile()
    blob.write(BODY)
    blob.flush()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    print("ready %d" % s.getsockname()[1], flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, blob), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
