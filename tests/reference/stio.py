"""stio.py - a few lines of safetensors for the reference scripts and the
tool tests: an independent reader/writer, numpy + json, no tokpipe code."""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
          "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
          "BOOL": np.bool_, "U16": np.uint16, "U32": np.uint32, "U64": np.uint64}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def dumps(tensors, metadata=None):
    """tensors: dict name -> numpy array. Returns the safetensors bytes."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    off = 0
    blobs = []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def loads(buf):
    """Returns (dict name -> numpy array, metadata dict)."""
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = buf[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=DTYPES[info["dtype"]]).reshape(info["shape"]).copy()
    return out, meta


def save(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(dumps(tensors, metadata))


def load(path):
    with open(path, "rb") as f:
        return loads(f.read())


def tensors_from_torch(d):
    """dict name -> torch tensor (or numpy) to dict name -> float32 numpy."""
    out = {}
    for k, v in d.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        out[k] = np.ascontiguousarray(v)
    return out


if __name__ == "__main__":
    t, m = load(sys.argv[1])
    print(m)
    for k, v in t.items():
        print(k, v.dtype, v.shape)
