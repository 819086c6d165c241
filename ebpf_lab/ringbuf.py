"""Read a BPF ring buffer's memory directly, in batches, into numpy arrays.

bcc's Python ring-buffer API calls a ctypes callback once per event (about a
million events per second at best) and has no way to report losses. This
module maps the ring buffer map's file descriptor the way libbpf does and
decodes whole spans of records at once:

* page 0 of the map (read-write) holds ``consumer_pos``: how far *we* have read;
* page 1 (read-only) holds ``producer_pos``: how far the kernel has reserved;
* then the data area, mapped **twice** back to back, so a record that wraps
  around the end of the buffer is still contiguous in our address space.

Each record starts with an 8-byte header: ``u32 len`` (with
:data:`BUSY_BIT` set while the producer is still writing it and
:data:`DISCARD_BIT` set if the producer threw it away) and ``u32 pg_off``.
Records are padded to 8 bytes. When every record in a span has the same
length -- the usual case, one fixed-size C struct per event -- the span is a
numpy structured array with a fixed stride, and reading a million events is
one ``memcpy``.

Only the file descriptor is needed: the kernel side (maps, programs) belongs to
the backend that created it. On x86_64 plain aligned 8-byte loads and stores
have the acquire/release ordering the protocol needs.
"""

from __future__ import annotations

import mmap
import select
import time
from typing import Iterator

import numpy as np

__all__ = ["BUSY_BIT", "DISCARD_BIT", "HEADER_SIZE", "RingBufReader", "record_stride", "span_dtype"]

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HEADER_SIZE = 8
PAGE_SIZE = mmap.PAGESIZE


def record_stride(record_size: int) -> int:
    """Bytes one record of ``record_size`` payload bytes occupies in the ring (header + padding)."""
    return (record_size + HEADER_SIZE + 7) & ~7


def span_dtype(record_dtype: np.dtype) -> np.dtype:
    """A dtype for one ring slot: the 8-byte header, then the record, padded to the stride.

    Viewing a span of same-sized records with this dtype gives every record's
    header (``_len``, ``_pg_off``) and fields without copying.
    """
    record_dtype = np.dtype(record_dtype)
    names = ["_len", "_pg_off"]
    formats: list = ["<u4", "<u4"]
    offsets = [0, 4]
    for name in record_dtype.names or ():
        fmt, off = record_dtype.fields[name][:2]
        names.append(name)
        formats.append(fmt)
        offsets.append(HEADER_SIZE + off)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": record_stride(record_dtype.itemsize)})


class RingBufReader:
    """Batch reader of one BPF ring buffer map.

    ``map_fd`` is the map's file descriptor (bcc: ``bpf["events"].map_fd``),
    ``data_size`` its size in bytes (``pages * PAGE_SIZE``, a power of two),
    ``record_dtype`` the numpy dtype of the C struct every record holds.

    >>> reader = RingBufReader(fd, 64 * 4096, dtype)      # doctest: +SKIP
    >>> batch = reader.read()        # a structured array of whole records
    >>> reader.wait(0.01)            # block until the kernel says there is data
    >>> reader.close()
    """

    def __init__(self, map_fd: int, data_size: int, record_dtype: np.dtype) -> None:
        if data_size <= 0 or data_size & (data_size - 1) or data_size % PAGE_SIZE:
            raise ValueError(f"ring buffer size {data_size} is not a power-of-two number of pages")
        self.map_fd = map_fd
        self.data_size = data_size
        self.mask = data_size - 1
        self.record_dtype = np.dtype(record_dtype)
        self.record_size = self.record_dtype.itemsize
        self.stride = record_stride(self.record_size)
        self._span_dtype = span_dtype(self.record_dtype)
        # the record fields only, at their offsets inside a slot (header skipped)
        self._payload_dtype = np.dtype({
            "names": list(self.record_dtype.names),
            "formats": [self.record_dtype.fields[n][0] for n in self.record_dtype.names],
            "offsets": [self.record_dtype.fields[n][1] for n in self.record_dtype.names],
            "itemsize": self.stride,
        })
        self._cons_mm = mmap.mmap(map_fd, PAGE_SIZE, flags=mmap.MAP_SHARED,
                                  prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self._prod_mm = mmap.mmap(map_fd, PAGE_SIZE + 2 * data_size, flags=mmap.MAP_SHARED,
                                      prot=mmap.PROT_READ, offset=PAGE_SIZE)
        except BaseException:
            self._cons_mm.close()
            raise
        self._cons = np.frombuffer(self._cons_mm, dtype=np.uint64, count=1)
        self._prod = np.frombuffer(self._prod_mm, dtype=np.uint64, count=1)
        self._data = np.frombuffer(self._prod_mm, dtype=np.uint8, offset=PAGE_SIZE, count=2 * data_size)
        self._epoll = select.epoll()
        try:
            self._epoll.register(map_fd, select.EPOLLIN)
        except PermissionError:  # not a ring buffer map (a memfd in the unit tests): poll by sleeping
            self._epoll.close()
            self._epoll = None
        self.records = 0      # records delivered so far
        self.discarded = 0    # records the producer discarded (skipped)
        self.batches = 0

    # -- positions --------------------------------------------------------
    @property
    def consumer_pos(self) -> int:
        return int(self._cons[0])

    @property
    def producer_pos(self) -> int:
        return int(self._prod[0])

    def pending_bytes(self) -> int:
        """Bytes reserved by the kernel and not yet consumed (committed or not)."""
        return self.producer_pos - self.consumer_pos

    # -- reading ----------------------------------------------------------
    def read(self) -> np.ndarray:
        """Copy out every committed record now in the buffer, oldest first.

        Stops at the first record the producer is still writing (BUSY). The
        returned array has ``record_dtype``'s fields (with the ring's stride as
        itemsize); an empty array when there is nothing to read.
        """
        chunks = list(self._read_spans())
        if not chunks:
            return np.empty(0, dtype=self._payload_dtype)
        if len(chunks) == 1:
            return chunks[0]
        return np.concatenate(chunks)

    def _read_spans(self) -> Iterator[np.ndarray]:
        cons = int(self._cons[0])
        prod = int(self._prod[0])  # x86_64: this load is ordered before the header loads below
        while cons < prod:
            start = cons & self.mask
            nslots = (prod - cons) // self.stride
            if nslots == 0:
                # a record of another size: walk it by hand
                cons = self._skip_odd_record(cons, prod)
                if cons < 0:
                    return
                continue
            span = np.ndarray((nslots,), dtype=self._span_dtype, buffer=self._data, offset=start)
            lens = span["_len"]
            flags_busy = (lens & BUSY_BIT) != 0
            # records of another size break the uniform stride: stop the span there
            bad = (lens & ~np.uint32(BUSY_BIT | DISCARD_BIT)) != self.record_size
            stop = flags_busy | bad
            n = int(np.argmax(stop)) if stop.any() else nslots
            if n:
                good = span[:n]
                discard = (good["_len"] & DISCARD_BIT) != 0
                payload = np.ndarray((n,), dtype=self._payload_dtype, buffer=self._data,
                                     offset=start + HEADER_SIZE, strides=(self.stride,))
                if discard.any():
                    self.discarded += int(discard.sum())
                    out = payload[~discard].copy()
                else:
                    out = payload.copy()
                del payload, good, span, lens
                cons += n * self.stride
                self._cons[0] = cons  # release the space to the producer
                self.records += len(out)
                self.batches += 1
                yield out
                continue
            if flags_busy[0]:
                return  # the oldest record is still being written
            del span, lens
            cons = self._skip_odd_record(cons, prod)
            if cons < 0:
                return

    def _skip_odd_record(self, cons: int, prod: int) -> int:
        """Consume one record whose length differs from ``record_size`` (discarded or foreign).

        Returns the new consumer position, or -1 when the record is still busy.
        """
        start = cons & self.mask
        hdr = int(self._data[start:start + 4].view(np.uint32)[0])
        if hdr & BUSY_BIT:
            return -1
        length = hdr & ~(BUSY_BIT | DISCARD_BIT)
        if not hdr & DISCARD_BIT:
            raise RuntimeError(
                f"ring buffer record of {length} bytes where {self.record_size} were expected: "
                "the program writes records of another type into this buffer")
        self.discarded += 1
        cons += record_stride(length)
        self._cons[0] = cons
        return cons

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until the kernel signals data; True if it did."""
        if self._epoll is None:
            time.sleep(timeout)
            return self.producer_pos != self.consumer_pos
        return bool(self._epoll.poll(timeout))

    def close(self) -> None:
        """Unmap the buffer (the map itself belongs to whoever created it)."""
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        for name in ("_cons", "_prod", "_data"):
            if hasattr(self, name):
                delattr(self, name)
        for mm in (getattr(self, "_prod_mm", None), getattr(self, "_cons_mm", None)):
            if mm is not None and not mm.closed:
                mm.close()

    def __enter__(self) -> "RingBufReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

