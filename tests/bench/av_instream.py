#!/usr/bin/python3
"""Direct zINSTREAM client for tests/bench/av_compare.sh: CLIENTS threads each stream MESSAGES
copies of one message file to clamd (64 KiB chunks, as mxguard-av does) and check that every
reply is exactly "stream: OK". Prints messages/s. This is the baseline without any milter."""
import socket
import struct
import sys
import threading
import time

sock_path, msg_file, clients, messages = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = open(msg_file, "rb").read()
frames = b"".join(struct.pack("!I", len(data[i:i + 65536])) + data[i:i + 65536]
                  for i in range(0, len(data), 65536)) + b"\0\0\0\0"
errors = []


def worker():
    for _ in range(messages):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
        s.sendall(b"zINSTREAM\0" + frames)
        reply = b""
        while not reply.endswith(b"\0"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        s.close()
        if reply != b"stream: OK\0":
            errors.append(reply)
            return


start = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - start
if errors:
    sys.exit("av_instream: unexpected reply %r" % errors[0])
print("%.1f" % (clients * messages / elapsed))
