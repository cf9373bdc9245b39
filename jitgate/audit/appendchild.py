"""The audit append process (`appendproc`): appends, syncs and answers each batch it is sent.

Run by `python -I` as a script, in a process of its own, so it imports the standard library's
smallest parts only (~12 MiB resident). Its socket, the writer's HEAD file and lock file are
passed down as descriptors; it only holds the lock (the writer's lock lasts while either
process has it open).

A frame from the writer: `FRAME` (path, data and witness lengths), the segment's path when it
changes (empty: the one before), the records' bytes, the HEAD file's new content. An answer:
`ANSWER` (errno, 0 when durable; message length) and the error's message.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import sys
from typing import Final

FRAME: Final = struct.Struct("!III")
ANSWER: Final = struct.Struct("!iI")


def serve(sock: socket.socket, head_fd: int) -> None:
    """Append, sync and answer each frame, in order, until the socket closes."""
    fd = -1
    while True:
        header = _receive(sock, FRAME.size)
        if header is None:
            return  # the writer closed the socket, or its process ended
        path_size, data_size, witness_size = FRAME.unpack(header)
        frame = _receive(sock, path_size + data_size + witness_size)
        if frame is None:
            return
        path = frame[:path_size]
        data = frame[path_size : path_size + data_size]
        witness = frame[path_size + data_size :]
        try:
            if path:
                if fd >= 0:
                    os.close(fd)
                    fd = -1
                fd = os.open(bytes(path), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            if fd < 0:
                raise OSError(errno.EBADF, "no segment named to append to")
            while data:
                data = data[os.write(fd, data) :]
            os.fdatasync(fd)
            if witness:
                os.pwrite(head_fd, witness, 0)
        except OSError as error:
            if fd >= 0:
                os.close(fd)
                fd = -1  # the writer names the segment again with its next batch
            message = (error.strerror or str(error)).encode()
            sock.sendall(ANSWER.pack(error.errno or errno.EIO, len(message)) + message)
        else:
            sock.sendall(ANSWER.pack(0, 0))


def _receive(sock: socket.socket, size: int) -> memoryview | None:
    """The next `size` bytes, or None once the socket closes before they all came."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    while view:
        received = sock.recv_into(view)
        if not received:
            return None
        view = view[received:]
    return memoryview(buffer)


if __name__ == "__main__":
    # It ends when the writer closes the socket, after the writer's last append: a signal
    # meant for the writer (SIGTERM to the whole group) must not cut that short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock_fd, head, _lock = (int(arg) for arg in sys.argv[1:4])
    # The lock file's descriptor is only held: the writer's lock lasts while either process
    # has it open.
    with socket.socket(fileno=sock_fd) as connection:
        serve(connection, head)
