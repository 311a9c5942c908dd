"""The same-node data plane from Python (docs/api.md "Same-node data plane").

A SharedMemoryRegion is a memfd, reserved, sealed against shrinking and growing, and
mapped; attached to a store over its attach socket (kvtier-store --shm_socket) with
SCM_RIGHTS, the store copies blocks straight between T1 and it: a Fetch or a Put then
moves no payload over gRPC. The connection stays open while the region is attached;
closing the region detaches it. Buffers passed to fetch/put with `shm=region` must lie in
the region (region.array(...) makes such views).
"""
from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import socket
from typing import Dict, Optional, Tuple

import grpc
import numpy as np

from kvtier.client import StoreError


class SharedMemoryRegion:
    def __init__(self, size: int):
        if size <= 0:
            raise ValueError("a region holds at least one byte")
        self.size = size
        self._fd = os.memfd_create("kvtier-region", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.posix_fallocate(self._fd, 0, size)  # reserved: no fault on first touch
            fcntl.fcntl(self._fd, fcntl.F_ADD_SEALS,
                        fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
            self._map = mmap.mmap(self._fd, size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError:
            os.close(self._fd)
            raise
        self._base = ctypes.addressof(ctypes.c_char.from_buffer(self._map))
        self._attached: Dict[Tuple[str, str, str], Tuple[socket.socket, bytes]] = {}

    def array(self, offset: int, nbytes: int) -> np.ndarray:
        """A uint8 view of [offset, offset + nbytes) of the region (no copy)."""
        if offset < 0 or offset + nbytes > self.size:
            raise ValueError(f"[{offset}, {offset + nbytes}) is outside the {self.size}-byte "
                             "region")
        return np.frombuffer(self._map, dtype=np.uint8, count=nbytes, offset=offset)

    def offset_of(self, buf) -> int:
        """Where a buffer lies in the region; ValueError when it does not."""
        if hasattr(buf, "detach") and hasattr(buf, "numpy"):
            buf = buf.detach().numpy()
        a = np.asarray(buf)
        start = a.__array_interface__["data"][0] - self._base
        if start < 0 or start + a.nbytes > self.size:
            raise ValueError("a same-node buffer lies outside the region")
        return start

    def region_id(self, socket_path: str, tenant: str = "", auth_token: str = "",
                  timeout: float = 5.0) -> bytes:
        """The region's id at the store on `socket_path`, attaching it on first use."""
        key = (socket_path, tenant, auth_token)
        if key not in self._attached:
            self._attached[key] = self._attach(socket_path, tenant, auth_token, timeout)
        return self._attached[key][1]

    def _attach(self, socket_path, tenant, auth_token, timeout):
        from kvtier.v1 import same_node_pb2

        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.settimeout(timeout)
        try:
            conn.connect(socket_path)
        except OSError as e:
            conn.close()
            raise StoreError(grpc.StatusCode.UNAVAILABLE,
                             f"no store's same-node socket at {socket_path}: {e}") from None
        request = same_node_pb2.ShmAttachRequest(version=1, tenant=tenant, auth_token=auth_token)
        try:
            socket.send_fds(conn, [request.SerializeToString()], [self._fd])
            reply = conn.recv(4096)
        except socket.timeout:
            conn.close()
            raise StoreError(grpc.StatusCode.DEADLINE_EXCEEDED,
                             "the store did not answer the attach") from None
        except OSError as e:
            conn.close()
            raise StoreError(grpc.StatusCode.UNAVAILABLE, f"attach: {e}") from None
        if not reply:
            conn.close()
            raise StoreError(grpc.StatusCode.UNAVAILABLE, "the store closed the attach connection")
        response = same_node_pb2.ShmAttachResponse.FromString(reply)
        if response.code != 0:
            conn.close()
            raise StoreError(grpc.StatusCode(_code(response.code)),
                             f"the store refused the region: {response.message}")
        return conn, response.region_id

    def close(self) -> None:
        """Detaches the region from every store and unmaps it."""
        for conn, _ in self._attached.values():
            conn.close()
        self._attached.clear()
        try:
            self._map.close()
        except BufferError:
            pass  # views are still alive; the mapping goes with them
        os.close(self._fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _code(value: int):
    for c in grpc.StatusCode:
        if c.value[0] == value:
            return c.value
    return grpc.StatusCode.UNKNOWN.value
