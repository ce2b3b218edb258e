"""Decode larcv2 ``ClusterVoxel3D::_voxel_vv`` voxels straight from ROOT basket bytes.

uproot reads every split leaf of a larcv2 ``cluster3d`` branch except the
voxels of each cluster: ``_voxel_vv._voxel_v`` is a ``std::vector<larcv::Voxel>``
inside a split ``std::vector<larcv::VoxelSet>``, which ROOT streams
*member-wise* and uproot refuses (``NotImplementedError: memberwise
serialization``). This module decodes those bytes with numpy.

Layout of one entry (verified on files written by ROOT 6.40 from classes that
mirror larcv2's ``DataFormat``; see ``tests/fixtures/make_larcv2_fixture.py``):

=========  ===========  ===================================================
bytes      type (BE)    meaning
=========  ===========  ===================================================
4          u4           byte count of the rest, flag ``0x40000000`` set
2          u2           collection version, member-wise bit ``0x4000`` set
2          u2           class version of ``larcv::Voxel``; 0 for a class
                        without ``ClassDef`` (larcv2's), then:
4          u4           checksum of ``larcv::Voxel`` (only when version 0;
                        equals the file's ``TStreamerInfo`` checksum)
then, for each cluster (``VoxelSet``) of the entry:
4          u4           n, number of voxels
8 n        u8           voxel ids (``Voxel::_id``, ``VoxelID_t``)
4 n        f4           values (``Voxel::_value``, ``float``)
=========  ===========  ===================================================

The member types come from larcv2 ``larcv/core/DataFormat/Voxel.h``
(``VoxelID_t _id; float _value;``) and ``DataFormatTypes.h``
(``typedef unsigned long long VoxelID_t``), and are checked against the
file's own streamer for ``larcv::Voxel`` by :func:`voxel_member_dtypes`.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["ClusterDecodeError", "voxel_member_dtypes", "decode_voxel_sets"]

_BYTECOUNT_FLAG = 0x40000000
_MEMBERWISE_BIT = 0x4000

# ROOT TStreamerElement basic type codes -> big-endian numpy dtypes
# (TDataType.h: kChar_t 1, kShort_t 2, kInt_t 3, kLong_t 4, kFloat_t 5,
# kDouble_t 8, kUChar_t 11, kUShort_t 12, kUInt_t 13, kULong_t 14,
# kLong64_t 16, kULong64_t 17).
_ROOT_TYPES = {1: ">i1", 2: ">i2", 3: ">i4", 4: ">i8", 5: ">f4", 8: ">f8", 11: ">u1",
               12: ">u2", 13: ">u4", 14: ">u8", 16: ">i8", 17: ">u8"}

#: What larcv2's Voxel.h declares, used when a file carries no streamer for it.
DEFAULT_VOXEL_DTYPES = (np.dtype(">u8"), np.dtype(">f4"))


class ClusterDecodeError(ValueError):
    """The bytes do not have the member-wise ``vector<Voxel>`` layout."""


def voxel_member_dtypes(streamer) -> Tuple[Tuple[np.dtype, np.dtype], Optional[int]]:
    """Dtypes of ``Voxel::_id`` and ``Voxel::_value`` and the class checksum, from a streamer.

    Parameters
    ----------
    streamer : uproot TStreamerInfo model or None
        ``file.streamer_named("larcv::Voxel")``.

    Returns
    -------
    (id_dtype, value_dtype), checksum
        Defaults from larcv2's header (and checksum ``None``) when ``streamer`` is None.

    Raises
    ------
    ClusterDecodeError
        The streamer's members are not ``_id`` then ``_value`` of basic types.
    """
    if streamer is None:
        return DEFAULT_VOXEL_DTYPES, None
    elements = list(streamer.member("fElements"))
    names = [str(e.member("fName")) for e in elements]
    if names != ["_id", "_value"]:
        raise ClusterDecodeError(f"larcv::Voxel streamer has members {names}, expected "
                                 f"['_id', '_value'] (larcv2 Voxel.h)")
    dtypes = []
    for element in elements:
        code = int(element.member("fType"))
        if code not in _ROOT_TYPES:
            raise ClusterDecodeError(f"larcv::Voxel member {element.member('fName')} has ROOT "
                                     f"type code {code}, not a basic type")
        dtypes.append(np.dtype(_ROOT_TYPES[code]))
    return (dtypes[0], dtypes[1]), int(streamer.member("fCheckSum"))


def decode_voxel_sets(data: bytes, n_sets: Optional[int] = None,
                      dtypes: Sequence[np.dtype] = DEFAULT_VOXEL_DTYPES,
                      checksum: Optional[int] = None) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Decode one entry of ``_voxel_vv._voxel_v`` into ``(ids, values)`` per cluster.

    Parameters
    ----------
    data : bytes
        The entry's bytes from the basket (``basket.data[off[e]:off[e + 1]]``).
    n_sets : int, optional
        Number of clusters the entry must hold (from the ``_voxel_vv._id``
        leaf). When None, clusters are read until the byte count is used up.
    dtypes : (id dtype, value dtype)
        Big-endian member dtypes (see :func:`voxel_member_dtypes`).
    checksum : int, optional
        Expected ``larcv::Voxel`` checksum; checked when the entry carries one.

    Returns
    -------
    list of (ndarray uint64, ndarray float32)
        Ids and values of each cluster, in cluster order.

    Raises
    ------
    ClusterDecodeError
        On a missing flag or bit, a checksum mismatch, a count that runs past
        the byte count, or bytes left over.
    """
    buf = memoryview(data)
    if len(buf) < 8:
        raise ClusterDecodeError(f"entry has {len(buf)} bytes, fewer than a header")
    bytecount = int.from_bytes(buf[0:4], "big")
    if not bytecount & _BYTECOUNT_FLAG:
        raise ClusterDecodeError(f"byte count word 0x{bytecount:08x} lacks flag 0x40000000")
    end = 4 + (bytecount & ~_BYTECOUNT_FLAG)
    if end != len(buf):
        raise ClusterDecodeError(f"byte count says {end} bytes, the entry has {len(buf)}")
    version = int.from_bytes(buf[4:6], "big")
    if not version & _MEMBERWISE_BIT:
        raise ClusterDecodeError(f"collection version 0x{version:04x} lacks the member-wise bit")
    class_version = int.from_bytes(buf[6:8], "big")
    pos = 8
    if class_version == 0:
        # ROOT writes version 0 plus a checksum for classes without ClassDef.
        if len(buf) < 12:
            raise ClusterDecodeError("entry ends inside the class checksum")
        found = int.from_bytes(buf[8:12], "big")
        if checksum is not None and found != checksum:
            raise ClusterDecodeError(f"larcv::Voxel checksum 0x{found:08x} differs from the "
                                     f"file's streamer (0x{checksum:08x})")
        pos = 12
    id_dtype, value_dtype = np.dtype(dtypes[0]), np.dtype(dtypes[1])
    step = id_dtype.itemsize + value_dtype.itemsize
    sets: List[Tuple[np.ndarray, np.ndarray]] = []
    while pos < end and (n_sets is None or len(sets) < n_sets):
        if pos + 4 > end:
            raise ClusterDecodeError(f"cluster {len(sets)}: count runs past the entry end")
        n = int.from_bytes(buf[pos:pos + 4], "big")
        pos += 4
        if pos + n * step > end:
            raise ClusterDecodeError(f"cluster {len(sets)}: {n} voxels need {n * step} bytes, "
                                     f"only {end - pos} left")
        ids = np.frombuffer(buf, dtype=id_dtype, count=n, offset=pos)
        pos += n * id_dtype.itemsize
        values = np.frombuffer(buf, dtype=value_dtype, count=n, offset=pos)
        pos += n * value_dtype.itemsize
        sets.append((ids.astype(np.uint64), values.astype(np.float32)))
    if n_sets is not None and len(sets) != n_sets:
        raise ClusterDecodeError(f"entry holds {len(sets)} clusters, the _voxel_vv._id leaf "
                                 f"says {n_sets}")
    if pos != end:
        raise ClusterDecodeError(f"{end - pos} bytes left after {len(sets)} clusters")
    return sets
