#!/bin/sh
# This script tests: tz img2patch vq optim (limits on sizes taken from files)
# Also requires: zstd (CLI)
# Every size read from a file is checked against a limit before anything
# is allocated from it, and the error names the limit. One crafted file
# per limit; each asserts exit 1, one line naming the limit, no output.
# (PNG side and IDX dims from directories are also in img2patch.sh.)
. "$(dirname "$0")/lib.sh"

"$PYTHON" - <<'PY'
import struct, zlib, json

def st_blob(header, data=b""):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data

# safetensors: header length over ST_MAX_HEADER (1e8), 9 dims, a tensor
# claiming more bytes than the buffer has, a shape product that overflows
open("hdr.st", "wb").write(struct.pack("<Q", 1 << 40) + b"{}")
open("dims.st", "wb").write(st_blob({"x": {"dtype": "F32", "shape": [1] * 9, "data_offsets": [0, 4]}}, b"\0" * 4))
open("bytes.st", "wb").write(st_blob({"x": {"dtype": "F32", "shape": [1000000000],
                                            "data_offsets": [0, 4000000000]}}, b"\0" * 16))
open("ovf.st", "wb").write(st_blob({"x": {"dtype": "F32", "shape": [1 << 62, 1 << 62],
                                          "data_offsets": [0, 0]}}))

# a zstd frame header claiming 2^60 bytes of content (beyond TZ_MAX_RECORD)
open("claim.tz", "wb").write(struct.pack("<IBB", 0xFD2FB528, 3 << 6, 0) + struct.pack("<Q", 1 << 60) + b"\0" * 16)

def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

def png(w, h):
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))

# PNG: 9000 x 9000 is within PNG_MAX_SIDE but over PNG_MAX_PIXELS (2^26)
open("pixels.png", "wb").write(png(9000, 9000))
open("side.png", "wb").write(png(1, 20000))

# IDX: more images than INT32_MAX
open("count-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, 0xFFFFFFFF, 28, 28) + b"\0" * 64)
PY

# ---- streams and safetensors ------------------------------------------------------------
tz make --field 'x:F32:1024=1' -o rec.tz
export TZ_MAX_RECORD=1000
bad "record over TZ_MAX_RECORD" 1 tz cat rec.tz -o out.tz
unset TZ_MAX_RECORD
has "record limit: named" "rec.tz: record 0: record claims 4[0-9]* bytes, over the limit of 1000 (TZ_MAX_RECORD)"
no_file "record limit: no output" out.tz
bad "frame header claiming 2^60 bytes" 1 tz cat claim.tz -o out.tz
has "frame claim: named" "claim.tz: record 0: record claims 1152921504606846976 bytes, over the limit of 4294967296 (TZ_MAX_RECORD)"
no_file "frame claim: no output" out.tz

bad "weights header over ST_MAX_HEADER" 1 vq -w hdr.st -o out.tz
has "header limit: named" "hdr.st: safetensors: header length 1099511627776 exceeds the limit of 100000000 bytes (ST_MAX_HEADER)"
no_file "header limit: no output" out.tz
bad "tensor of 9 dims" 1 vq -w dims.st -o out.tz
has "dims limit: named" "tensor 'x': 9 dimensions, at most 8 supported (ST_MAX_DIMS)"
bad "tensor bytes beyond the buffer" 1 vq -w bytes.st -o out.tz
has "tensor bytes: named" "tensors cover 4000000000 data bytes but the buffer has 16"
bad "shape product overflow" 1 vq -w ovf.st -o out.tz
has "shape overflow: named" "tensor 'x': shape product overflows"
# the same blobs as records of a stream
for f in hdr dims bytes; do zstd -q -f "$f.st" -o "$f.tz"; done
bad "record header over ST_MAX_HEADER" 1 tz cat hdr.tz -o out.tz
has "record header limit: named" "hdr.tz: record 0: safetensors: header length 1099511627776 exceeds the limit of 100000000 bytes (ST_MAX_HEADER)"
bad "record tensor of 9 dims" 1 tz cat dims.tz -o out.tz
has "record dims: named" "dims.tz: record 0: tensor 'x': 9 dimensions, at most 8 supported (ST_MAX_DIMS)"
bad "record tensor bytes beyond the record" 1 tz cat bytes.tz -o out.tz
has "record bytes: named" "bytes.tz: record 0: safetensors: tensors cover 4000000000 data bytes but the buffer has 16"
no_file "records: no output" out.tz

# ---- images -------------------------------------------------------------------------------
bad "PNG over PNG_MAX_PIXELS" 1 img2patch pixels.png -o out.tz
has "pixels limit: named" "pixels.png: 9000x9000 pixels is over the limit of 67108864 (PNG_MAX_PIXELS)"
bad "PNG over PNG_MAX_SIDE (height)" 1 img2patch side.png -o out.tz
has "side limit: named" "side.png: height 20000 is over the limit of 16384 (PNG_MAX_SIDE)"
bad "IDX count over INT32_MAX" 1 img2patch count-idx3-ubyte -o out.tz
has "IDX count: named" "count-idx3-ubyte: 4294967295 images is over the limit of 2147483647 (INT32_MAX)"
no_file "images: no output" out.tz

# a single PNG file over IMGSRC_MAX_MEMBER (sparse: a signature, then zeros)
printf '\211PNG\r\n\032\n' >big.png && truncate -s 65M big.png
bad "PNG file over IMGSRC_MAX_MEMBER" 1 img2patch big.png -o out.tz
has "PNG file limit: named" "big.png: over the limit of 67108864 bytes (IMGSRC_MAX_MEMBER)"
# archive members: a size in the tar header (refused before reading), and a
# zip member streamed from stdin without sizes (refused once it passes)
"$PYTHON" - <<'PY'
import tarfile, zipfile, io, sys
with tarfile.open("big.tar.gz", "w:gz") as t:
    i = tarfile.TarInfo("s0.png"); i.size = 65 << 20
    t.addfile(i, io.BytesIO(b"\0" * i.size))
class Pipe(io.RawIOBase):   # unseekable: zipfile writes data descriptors
    def __init__(s, f): s.f = f
    def writable(s): return True
    def write(s, b): return s.f.write(b)
with open("big.zip", "wb") as f, zipfile.ZipFile(Pipe(f), "w", zipfile.ZIP_DEFLATED) as z:
    with z.open("s0.png", "w") as m:
        for _ in range(65): m.write(b"\0" * (1 << 20))
PY
bad "tar member over IMGSRC_MAX_MEMBER (header)" 1 img2patch big.tar.gz -o out.tz
has "tar member limit: named" "big.tar.gz: s0.png: 68157440 bytes is over the limit of 67108864 (IMGSRC_MAX_MEMBER)"
# through a pipe, so libarchive reads the zip as a stream (no central
# directory): the member's size is unknown until its end
mkdir wrap
printf '#!/bin/sh\ncat big.zip | "%s/img2patch" "$@"\n' "$TP_BIN" >wrap/img2patch && chmod +x wrap/img2patch
bad "zip member over IMGSRC_MAX_MEMBER (streamed)" 1 wrap/img2patch - -o out.tz
has "zip member limit: named" "stdin: s0.png: over the limit of 67108864 bytes (IMGSRC_MAX_MEMBER)"
no_file "members: no output" out.tz

# ---- a flag: the optimizer's --freeze regex (found by fuzz_flags: glibc's
# regcomp expands interval counts, nested ones multiplying, and hung)
bad "--freeze interval counts over FREEZE_MAX_REPEAT" 2 optim -w w.st -g g.st -s s.st --freeze '(x{32767}){32767}'
has "freeze limit: named" "multiply to 1073676289, over the limit of 1000 (FREEZE_MAX_REPEAT)"
# stacked '+' double what regcomp copies each time (found by fuzz_flags too)
bad "--freeze with 40 stacked '+'" 2 optim -w w.st -g g.st -s s.st --freeze "(t/65$(printf '+%.0s' $(seq 40))ss)"
has "stacked +: named" "(and '+', as 2) multiply to 1099511627776, over the limit of 1000"
# and a long pattern costs regcomp up to 24 KB a byte (found by fuzz_flags: 8.8 MB
# for 367 bytes of '$' and ']')
bad "--freeze over FREEZE_MAX_LEN" 2 optim -w w.st -g g.st -s s.st --freeze "$(printf 'a%.0s' $(seq 257))"
has "freeze length: named" "freeze pattern of 257 bytes, over the limit of 256 (FREEZE_MAX_LEN)"
eq "--freeze of 256 bytes passes the check" \
    "$(optim -w w.st -g g.st -s s.st --freeze "$(printf 'a%.0s' $(seq 256))" 2>&1 | grep -c FREEZE_MAX_LEN)" 0
eq "--freeze with a few '+' passes the check" \
    "$(optim -w w.st -g g.st -s s.st --freeze 'encoder\.[0-9]+\.(attn|mlp)+' 2>&1 | grep -c FREEZE_MAX_REPEAT)" 0
done_tests
