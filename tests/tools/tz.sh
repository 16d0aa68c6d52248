# tz.sh - tests of the tz tool: every subcommand's values, zstd -t on
# every stream written, bad inputs (one-line error naming file and record,
# exit 1, no output file), usage errors, broken pipes.
# Also requires: zstd, /usr/bin/python3 with numpy.
. "$(dirname "$0")/lib.sh"

# recs FILE EXPR: EXPR evaluated in Python over R, the list of records of
# FILE decompressed by `zstd -dc` and parsed by tests/reference/stio.py
# (independent of tokpipe): R[i] = (dict name -> numpy array, metadata).
cat >"$T/recs.py" <<'EOF'
import json, os, struct, sys
sys.path.insert(0, os.environ["REF_PY"])
import numpy as np
import stio
stio.DTYPES.setdefault("BF16", np.uint16)  # numpy has no bfloat16: raw bits
buf = open(sys.argv[1], "rb").read()
R, pos = [], 0
while pos < len(buf):
    n = struct.unpack("<Q", buf[pos:pos + 8])[0]
    h = json.loads(buf[pos + 8:pos + 8 + n])
    end = max([v["data_offsets"][1] for k, v in h.items() if k != "__metadata__"] or [0])
    R.append(stio.loads(buf[pos:pos + 8 + n + end]))
    pos += 8 + n + end
K = lambda r: json.loads(r[1]["keys"])
*stmts, last = sys.argv[2].split("; ")
for s in stmts:
    exec(s)
print(eval(last))
EOF
export REF_PY
recs() { zstd -dcq "$1" >"$T/.raw" && "$PYTHON" "$T/recs.py" "$T/.raw" "$2"; }
# err_has WHAT PATTERN: the last command's stderr (kept by ok/bad) matches
err_has() {
    if grep -q -- "$2" "$T/.err"; then _ok "$1"; else _no "$1" "stderr: $(head -c 300 "$T/.err")"; fi
}
# json FILE EXPR: EXPR over J, the first line of `tz info --json FILE`
json() { tz info --json "$1" | "$PYTHON" -c "import json,sys; J=json.loads(sys.stdin.readline()); print(repr(($2)))"; }

# ---- make, info, check --------------------------------------------------
ok "make" tz make --field image:F32:3x1x2x2=iota --field label:I32:3=iota \
    --field step:I64:=7 --records 4 --keys s --meta run=r1 -o a.tz
eq "make values" "$(recs a.tz '[int(r[0]["label"][2]) for r in R], float(R[3][0]["image"][2,0,1,1]), int(R[1][0]["step"]), R[0][1]["run"]')" \
    "([2, 5, 8, 11], 47.0, 7, 'r1')"
eq "make keys" "$(recs a.tz 'K(R[1])')" "['s3', 's4', 's5']"
ok "make rand is seeded" tz make --field x:F32:50=rand:3 -o r1.tz
tz make --field x:F32:50=rand:3 -o r2.tz
tz make --field x:F32:50=rand:4 -o r3.tz
eq "make rand values" "$(recs r1.tz 'float(R[0][0]["x"].min()) >= 0 and float(R[0][0]["x"].max()) < 1')" "True"
eq "make same seed same bytes" "$(cmp -s r1.tz r2.tz && echo same)" "same"
eq "make other seed differs" "$(cmp -s r1.tz r3.tz || echo differ)" "differ"
ok "make every dtype" tz make --field b:BOOL:3=0,2 --field u:U8:3=300,-1,7 --field h:F16:3=1.5,65504,1e-7 \
    --field bf:BF16:2=3.140625 --field i8:I8:2=-200 --field u64:U64:1=12 --field d:F64:1=0.1 -o d.tz
eq "make dtype conversions" "$(recs d.tz 'R[0][0]["b"].tolist(), R[0][0]["u"].tolist(), R[0][0]["h"].tolist(), R[0][0]["i8"].tolist(), int(R[0][0]["u64"][0]), float(R[0][0]["d"][0])')" \
    "([False, True, False], [255, 0, 7], [1.5, 65504.0, 1.1920928955078125e-07], [-128, -128], 12, 0.1)"

eq "info --json counts" "$(json a.tz 'J["records"], J["samples"], J["seek_table"], [(f["name"], f["dtype"], f["shape_min"], f["records"]) for f in J["fields"]]')" \
    "(4, 12, True, [('step', 'I64', [], 4), ('image', 'F32', [3, 1, 2, 2], 4), ('label', 'I32', [3], 4)])"
eq "info --json bytes" "$(json a.tz 'J["compressed_bytes"] == __import__("os").path.getsize("a.tz"), [f["bytes"] for f in J["fields"]], J["metadata_keys"]')" \
    "(True, [32, 192, 48], ['format', 'run', 'keys'])"
ok "info text" tz info a.tz
eq "info text header" "$(tz info a.tz | head -1)" "a.tz: 4 records, 12 samples"
eq "info shape line" "$(tz info a.tz | grep ' image ' | tr -s ' ')" " image F32 [3,1,2,2] 192 4"
ok "check" tz check a.tz
eq "check output" "$(tz check a.tz)" "a.tz: 4 records OK"

# ---- head, slice, cat ---------------------------------------------------
ok "head -n" sh -c 'tz head -n 2 a.tz > h2.tz'
eq "head -n values" "$(recs h2.tz 'len(R), K(R[1])')" "(2, ['s3', 's4', 's5'])"
ok "head --samples" sh -c 'tz head --samples 5 a.tz > h5.tz'
eq "head --samples cut" "$(recs h5.tz '[K(r) for r in R], R[1][0]["label"].tolist(), R[1][0]["image"].shape, int(R[1][0]["step"])')" \
    "([['s0', 's1', 's2'], ['s3', 's4']], [3, 4], (2, 1, 2, 2), 7)"
ok "slice with seek table" tz slice 1:3 a.tz -o s13.tz
tz head -n 3 a.tz | tz slice 1:3 >s13pipe.tz
eq "slice via seek = slice of head" "$(zstd -dcq s13.tz | cksum)" "$(zstd -dcq s13pipe.tz | cksum)"
eq "slice values" "$(recs s13.tz '[K(r)[0] for r in R]')" "['s3', 's6']"
eq "slice A: and :B" "$(tz slice 3: a.tz | zstd -dcq | cksum) $(tz slice :1 a.tz | zstd -dcq | cksum)" \
    "$(tz head -n 4 a.tz | tz slice 3:4 | zstd -dcq | cksum) $(tz head -n 1 a.tz | zstd -dcq | cksum)"
eq "slice past the end" "$(tz slice 4:9 a.tz | wc -c) $(tz slice 7: a.tz | wc -c)" "0 0"
eq "slice to past the end" "$(tz slice 3:9 a.tz | zstd -dcq | cksum)" "$(tz slice 3 a.tz | zstd -dcq | cksum)"
ok "cat" tz cat a.tz h2.tz -o cat.tz
eq "cat = both streams" "$(zstd -dcq cat.tz | cksum)" "$(zstd -dcq a.tz h2.tz | cksum)"
eq "cat count" "$(json cat.tz 'J["records"], J["samples"]')" "(6, 18)"

# slice must seek: with record 0 corrupted (frame sizes intact) it still
# succeeds, while reading through record 0 fails.
"$PYTHON" - <<'EOF'
d = bytearray(open("a.tz", "rb").read()); d[40] ^= 0x55
open("a0bad.tz", "wb").write(d)
EOF
ok "slice seeks past a bad record 0" tz slice 2:4 a0bad.tz -o s24.tz
eq "slice after seek values" "$(recs s24.tz '[K(r)[0] for r in R]')" "['s6', 's9']"
bad "reading through the bad record 0" 1 tz check a0bad.tz
err_has "bad record 0 named" "^tz: a0bad.tz: record 0: "

# ---- batch ----------------------------------------------------------------
tz make --field x:F32:2x3=iota --field label:I32:2=iota --field c:F32:=5 --records 5 --keys k -o ten.tz
ok "batch 3" tz batch 3 ten.tz -o b3.tz
eq "batch 10 samples of 3: 3,3,3,1" "$(recs b3.tz '[len(K(r)) for r in R], [r[0]["label"].tolist() for r in R]')" \
    "([3, 3, 3, 1], [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]])"
eq "batch keys carried" "$(recs b3.tz 'K(R[1]), K(R[3]), R[2][0]["x"][2].tolist(), float(R[3][0]["c"])')" \
    "(['k3', 'k4', 'k5'], ['k9'], [24.0, 25.0, 26.0], 5.0)"
eq "info shape ranges" "$(tz info b3.tz | grep ' x ' | tr -s ' ')" " x F32 [1..3,3] 120 4"
eq "info --json shape ranges" "$(json b3.tz '[(f["shape_min"], f["shape_max"]) for f in J["fields"] if f["name"] == "x"]')" \
    "[([1, 3], [3, 3])]"
eq "batch 4 then 2 restores the records" "$(tz batch 4 ten.tz | tz batch 2 | zstd -dcq | cksum)" "$(zstd -dcq ten.tz | cksum)"
tz make --field x:F32:2x3 --keys z -o other.tz
tz cat ten.tz other.tz -o mixed.tz
bad "batch of mismatched records" 1 tz batch 4 mixed.tz -o bm.tz
err_has "mismatch names file, record, field" "^tz: mixed.tz: record 5: field 'label' is missing"
no_file "no output after a batch error" bm.tz

# ---- shuffle ---------------------------------------------------------------
tz make --field label:I32:4=iota --field v:F32:4x2=iota --records 25 --keys s -o hundred.tz
ok "shuffle" tz shuffle --seed 1 --buffer 30 hundred.tz -o sh1.tz
tz shuffle --seed 1 --buffer 30 hundred.tz -o sh1b.tz
tz shuffle --seed 2 --buffer 30 hundred.tz -o sh2.tz
eq "shuffle same seed same bytes" "$(cmp -s sh1.tz sh1b.tz && echo same)" "same"
eq "shuffle orders differ" "$(recs sh1.tz 'sum([r[0]["label"].tolist() for r in R], [])' >o1; recs sh2.tz 'sum([r[0]["label"].tolist() for r in R], [])' >o2; cmp -s o1 o2 || echo differ)" "differ"
eq "shuffle is a permutation, samples intact" "$(recs sh1.tz 'L=sum([r[0]["label"].tolist() for r in R], []); sorted(L) == list(range(100)), L != list(range(100)), all(K(r) == ["s%d" % x for x in r[0]["label"]] for r in R), all((r[0]["v"][:, 0] == 2 * r[0]["label"]).all() for r in R), [len(K(r)) for r in R] == [4] * 25')" \
    "(True, True, True, True, True)"
ok "shuffle --batch" tz shuffle --seed 1 --batch 7 hundred.tz -o sh7.tz
eq "shuffle --batch sizes" "$(recs sh7.tz '[len(K(r)) for r in R]')" "[7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2]"
ok "shuffle --records" tz shuffle --seed 3 --records hundred.tz -o shr.tz
tz shuffle --seed 3 --records hundred.tz -o shr2.tz
eq "shuffle --records same seed same bytes" "$(cmp -s shr.tz shr2.tz && echo same)" "same"
eq "shuffle --records permutes whole records" "$(recs shr.tz 'F=[int(r[0]["label"][0]) for r in R]; sorted(F) == list(range(0, 100, 4)), F != sorted(F), all(r[0]["label"].tolist() == list(range(r[0]["label"][0], r[0]["label"][0] + 4)) for r in R)')" \
    "(True, True, True)"
tz cat hundred.tz | cat >noseek.tz
bad "shuffle --records needs a seek table" 1 tz shuffle --seed 1 --records noseek.tz -o shp.tz
err_has "no seek table named" "^tz: noseek.tz: --records needs a seek table"
bad "shuffle --records of stdin" 2 tz shuffle --seed 1 --records -
bad "shuffle needs --seed" 2 tz shuffle hundred.tz

# ---- pick, drop, meta -----------------------------------------------------
ok "pick" tz pick label,step a.tz -o pick.tz
eq "pick fields, metadata kept" "$(recs pick.tz 'sorted(R[2][0]), K(R[2]), R[2][1]["run"]')" "(['label', 'step'], ['s6', 's7', 's8'], 'r1')"
ok "drop" tz drop image a.tz -o drop.tz
eq "drop fields" "$(recs drop.tz 'sorted(R[0][0]), R[0][0]["label"].tolist()')" "(['label', 'step'], [0, 1, 2])"
bad "pick of an absent field" 1 tz pick label,nope a.tz -o pk.tz
err_has "absent field named" "^tz: a.tz: record 0: missing field 'nope'$"
no_file "no output after pick error" pk.tz
ok "meta --set" tz meta --set run=r2 --set extra=1 --delete keys a.tz -o meta.tz
eq "meta --get" "$(tz meta --get run meta.tz | tr '\n' ' ')" "r2 r2 r2 r2 "
eq "meta print" "$(tz meta meta.tz | head -1)" '{"format":"pt","run":"r2","extra":"1"}'
eq "meta --delete keys" "$(json meta.tz 'J["metadata_keys"], J["samples"]')" "(['format', 'run', 'extra'], 12)"
bad "meta --get absent" 1 tz meta --get nope a.tz
err_has "meta absent named" "^tz: a.tz: record 0: no metadata 'nope'"
bad "meta --set bad keys" 1 tz meta --set 'keys=[1]' a.tz -o mk.tz
err_has "bad keys named" "record 0: metadata 'keys' has 1 entries"
no_file "no output after meta error" mk.tz

# ---- merge ---------------------------------------------------------------
tz make --field image:F32:3x2=iota --records 2 --keys s -o ma.tz
tz make --field label:I32:3=iota --field image:F32:3x2=-1 --records 2 -o mb.tz
tz make --field label:I32:3=iota --records 1 -o mshort.tz
tz make --field label:I32:2=iota --records 2 -o mtwo.tz
ok "merge" tz merge ma.tz mb.tz -o m.tz
eq "merge field union, B wins" "$(recs m.tz 'sorted(R[1][0]), R[1][0]["label"].tolist(), float(R[1][0]["image"].max()), K(R[1])')" \
    "(['image', 'label'], [3, 4, 5], -1.0, ['s3', 's4', 's5'])"
bad "merge --no-clobber clash" 1 tz merge --no-clobber ma.tz mb.tz -o mnc.tz
err_has "clash named" "^tz: mb.tz: record 0: field 'image' is in both streams"
no_file "no output after merge error" mnc.tz
bad "merge of a shorter stream" 1 tz merge ma.tz mshort.tz -o ms.tz
err_has "shorter stream named" "^tz: mshort.tz: ends after 1 records"
bad "merge of other sample counts" 1 tz merge ma.tz mtwo.tz -o mt.tz
err_has "sample mismatch named" "^tz: mtwo.tz: record 0: 2 samples, ma.tz has 3"
ok "merge from stdin" sh -c 'tz pick label mb.tz | tz merge --no-clobber ma.tz - > mstd.tz'
eq "merge from stdin fields" "$(recs mstd.tz 'sorted(R[0][0])')" "['image', 'label']"

# ---- stats -----------------------------------------------------------------
tz make --field x:F32:3=1,2,3,4,nan,inf --field n:I16:2=-3,5 --records 2 -o st.tz
ok "stats" tz stats st.tz
# x over both records: 1,2,3 | 4,nan,inf -> finite 1..4
eq "stats of a known tensor" "$(tz stats st.tz | grep '^x')" "$(printf 'x\tF32\t4\t1\t4\t2.5\t1.11803398875\t1\t1')"
eq "stats of an integer field" "$(tz stats --field n st.tz | tail -1)" "$(printf 'n\tI16\t4\t-3\t5\t1\t4\t0\t0')"
eq "stats header" "$(tz stats st.tz | head -1)" "$(printf 'field\tdtype\tcount\tmin\tmax\tmean\tstd\tnan\tinf')"
# stability: 1e9 + {0,1,2,3} in doubles has variance 1.25 exactly
tz make --field y:F64:2=1000000000,1000000001,1000000002,1000000003 --records 2 -o big.tz
eq "stats stable for a large offset" "$(tz stats big.tz | tail -1 | cut -f6,7)" "$(printf '1000000001.5\t1.11803398875')"
bad "stats of an absent field" 1 tz stats --field nope st.tz

err_has "stats absent named" "^tz: st.tz: record 0: missing field 'nope'"

# ---- rename ----------------------------------------------------------------
tz make --field a:F32:2=1,2 --field b:I32:2=3 --records 2 -o rn.tz
ok "rename" tz rename a=x,b=a rn.tz -o rno.tz
eq "rename fields" "$(recs rno.tz '[sorted(R[1][0]), R[1][0]["x"].tolist(), R[1][0]["a"].tolist()]')" "[['a', 'x'], [1.0, 2.0], [3, 3]]"
bad "rename of an absent field" 1 tz rename nope=x rn.tz
err_has "rename absent named" "missing field 'nope'"
bad "rename without NEW" 2 tz rename a= rn.tz

# ---- argmax ----------------------------------------------------------------
# rows: first of a tie wins; NaN is never the largest; other fields pass
tz make --field logits:F32:2x3x4=0,5,5,1,nan,2,1,1,-1,-2,-3,-4 --field label:I32:2=7 -o am.tz
ok "argmax" tz argmax logits:codes am.tz -o amo.tz
eq "argmax values" "$(recs amo.tz '[R[0][0]["codes"].tolist(), str(R[0][0]["codes"].dtype)]')" "[[[1, 1, 0], [1, 1, 0]], 'int32']"
eq "argmax keeps the other fields" "$(recs amo.tz 'sorted(R[0][0])')" "['codes', 'label', 'logits']"
bad "argmax of an integer field" 1 tz argmax label am.tz
bad "argmax of an absent field" 1 tz argmax nope am.tz
bad "argmax without a field" 2 tz argmax

# ---- npy -------------------------------------------------------------------
tz make --field image:F32:3x1x2x2=iota --field label:I32:3=iota --field a/b:U8:3=9 --field h:F16:3=0.5 \
    --field bf:BF16:3=2.5 --field s:I64:=4 --records 3 -o np.tz
ok "npy" tz npy -d out -i np.tz
eq "npy files, safe names" "$(ls out | tr '\n' ' ')" "a_b.npy bf.npy h.npy image.npy label.npy s.npy "
eq "npy read back by numpy" "$("$PYTHON" -c '
import numpy as np
i = np.load("out/image.npy"); l = np.load("out/label.npy"); h = np.load("out/h.npy")
b = np.load("out/bf.npy"); u = np.load("out/a_b.npy"); s = np.load("out/s.npy")
print(i.dtype, i.shape, (i.ravel() == np.arange(36)).all(), l.dtype, l.tolist(), h.dtype, float(h[0]),
      b.dtype, float(b[8]), u.dtype, u.shape, int(u[0]), s.dtype, s.tolist())')" \
    "float32 (9, 1, 2, 2) True int32 [0, 1, 2, 3, 4, 5, 6, 7, 8] float16 0.5 float32 2.5 uint8 (9,) 9 int64 [4, 4, 4]"
ok "npy of named fields from stdin" sh -c 'tz npy -d out2 label < np.tz'
eq "npy named fields only" "$(ls out2)" "label.npy"
tz make --field ../x:F32:2=1 -o dots.tz
ok "npy name with dots" tz npy -d out3 -i dots.tz
eq "npy cannot escape DIR" "$(ls -A out3)" "_._x.npy"
bad "npy of an absent field" 1 tz npy -d out4 -i np.tz label nope
err_has "npy absent named" "^tz: np.tz: record 0: missing field 'nope'"
no_file "npy writes nothing on error" out4/label.npy
tz make --field x:F32:2x3 -o x23.tz
tz make --field x:F32:2x4 -o x24.tz
tz cat x23.tz x24.tz -o x2.tz
bad "npy of a changing shape" 1 tz npy -d out5 -i x2.tz
err_has "npy shape change named" "^tz: x2.tz: record 1: field 'x': F32 \\[2,4\\] does not continue"
no_file "npy writes nothing on a shape change" out5/x.npy

# ---- zstd -t accepts every stream written above ----------------------------
n=0
for f in *.tz; do
    case "$f" in a0bad.tz) continue ;; esac
    zstd -tq "$f" 2>/dev/null || { _no "zstd -t $f" "rejected"; n=$((n + 1)); }
done
eq "zstd -t accepts every stream tz wrote" "$n" "0"

# ---- bad inputs --------------------------------------------------------------
# raw safetensors bytes compressed by the zstd CLI (content size + checksum)
"$PYTHON" - <<'EOF'
import json, struct
def st(header, data=b""):
    h = json.dumps(header).encode(); h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data
open("huge.st", "wb").write(struct.pack("<Q", 1 << 60) + b"{}      ")
open("ovf.st", "wb").write(st({"x": {"dtype": "F32", "shape": [1 << 40, 1 << 40, 1 << 40], "data_offsets": [0, 0]}}))
open("claim.st", "wb").write(st({"x": {"dtype": "F32", "shape": [1 << 30, 1 << 28], "data_offsets": [0, 1 << 60]}}))
open("dtype.st", "wb").write(st({"x": {"dtype": "X99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4))
EOF
tz make --field x:F32:1 -o one.tz
for k in huge ovf claim dtype; do
    zstd -qf --check "$k.st" -o "$k.zst"
    cat one.tz "$k.zst" >"$k.tz"   # the bad record is record 1
done
# bad_record FILE WHAT PATTERN: reading FILE fails at record 1 with
# "tz: FILE: record 1: PATTERN", and no output file is left
bad_record() {
    bad "$2" 1 tz cat "$1" -o o.tz
    err_has "$2: file and record named" "^tz: $1: record 1: $3"
    no_file "$2: no output" o.tz
}
bad_record huge.tz "header claiming 2^60 bytes" "safetensors: header length 1152921504606846976 exceeds"
bad_record claim.tz "tensor claiming 2^60 bytes" ".*1152921504606846976 data bytes"
bad_record ovf.tz "shape product overflow" "tensor 'x': shape product overflows"
bad_record dtype.tz "unknown dtype" "tensor 'x': unknown dtype 'X99'"

size=$(wc -c <a.tz)
head -c $((size / 2)) a.tz >trunc.tz
bad "truncated stream" 1 tz cat trunc.tz -o o.tz
err_has "truncation named" "^tz: trunc.tz: record [0-9]: truncated"
no_file "no output for a truncated stream" o.tz
# a flipped byte in the middle of record 1's frame: zstd or its checksum says so
tz make --field x:F32:64=rand:1 --records 2 | cat >two.tz
"$PYTHON" - <<'EOF'
import struct
d = bytearray(open("two.tz", "rb").read())
# frame 0 ends where frame 1's magic starts
i = d.index(struct.pack("<I", 0xFD2FB528), 4)
d[i + (len(d) - i) // 2] ^= 0x01
open("flip.tz", "wb").write(d)
EOF
bad "flipped byte" 1 tz check flip.tz
err_has "flipped byte named" "^tz: flip.tz: record 1: corrupted record"
printf 'not a stream at all' >junk.tz
bad "not zstd" 1 tz info junk.tz
err_has "not zstd named" "^tz: junk.tz: record 0: not a zstd frame"
bad "missing file" 1 tz check nosuch.tz
err_has "missing file named" "^tz: nosuch.tz: "

# empty input is a valid stream of 0 records
: >empty.tz
ok "empty stream check" tz check empty.tz
eq "empty stream check output" "$(tz check empty.tz)" "empty.tz: 0 records OK"
eq "empty stream info" "$(json empty.tz 'J["records"], J["samples"], J["fields"]')" "(0, 0, [])"
eq "empty stream through cat/batch/shuffle" "$(tz cat </dev/null | tz batch 3 | tz shuffle --seed 1 | wc -c)" "0"
ok "empty stream to a file" tz cat empty.tz -o e2.tz
eq "empty output file" "$(wc -c <e2.tz)" "0"

# ---- usage errors, broken pipes ----------------------------------------------
bad "no command" 2 tz
bad "unknown command" 2 tz frobnicate
bad "bad number" 2 tz head -n x a.tz
bad "unknown option" 2 tz cat --nope a.tz
bad "bad field spec" 2 tz make --field x:F33:2
bad "slice range backwards" 2 tz slice 3:1 a.tz
ok "help" tz batch -h
ok "progress" tz cat --progress a.tz -o pg.tz
err_has "progress on stderr" "4 records"
eq "progress output unchanged" "$(zstd -dcq pg.tz | cksum)" "$(zstd -dcq a.tz | cksum)"
eq "version" "$(tz --version)" "tz (tokpipe) 0.1.0"
timeout 60 sh -c '{ tz make --field x:F32:100x100=rand:1 --records 500 2>err; echo $? >rc; } | head -c 1000 >/dev/null'
eq "broken pipe: exit 1, no hang" "$(cat rc)" "1"
eq "broken pipe: one-line error" "$(cat err)" "tz: stdout: write error: Broken pipe"

# ---- feed: the data source of training runs -----------------------------
tz make --field x:F32:10x3=iota --field label:I32:10=iota --keys k --records 3 -o fd.tz
ok "feed: 7 steps of 4" sh -c 'tz feed -b 4 --steps 7 --seed 9 fd.tz > feed.tz'
tz meta < feed.tz > feed.meta
"$PYTHON" - <<'PY' > feed.check
import json
metas = [json.loads(l) for l in open("feed.meta")]
keys = [k for m in metas for k in json.loads(m["keys"])]
print(len(metas), [int(m["step"]) for m in metas] == list(range(7)),
      len(keys), len(set(keys[:28])), {m["epoch"] for m in metas} == {"0"})
PY
# 7 records, steps 0..6, 28 samples all distinct (epoch 0 has 30), all in epoch 0
eq "feed: records, steps, distinct samples within an epoch" "$(cat feed.check)" "7 True 28 28 True"
tz feed -b 4 --steps 9 --seed 9 fd.tz | tz meta | sed -n '8p;9p' | grep -c '"epoch":"1"' > feed.ep
eq "feed: the batch straddling epochs starts epoch 0, the next is epoch 1" "$(cat feed.ep)" 1
a=$(tz feed -b 4 --steps 7 --seed 9 fd.tz | tz slice 4:7 | md5sum)
b=$(tz feed -b 4 --steps 7 --start-step 4 --seed 9 fd.tz | md5sum)
eq "feed: a resumed feed equals the rest of an uninterrupted one" "$a" "$b"
c=$(tz feed -b 4 --steps 7 --seed 10 fd.tz | md5sum)
[ "$a" != "$c" ]; eq "feed: another seed, another order" "$?" 0
bad "feed: -b is required" 2 tz feed --steps 3 fd.tz
bad "feed: start past the end" 2 tz feed -b 2 --steps 3 --start-step 4 fd.tz
# --hflip: each sample as it is or mirrored, about half mirrored, the same
# bits in a resumed run
tz make --field image:F32:64x1x1x2=iota -o fl.tz
tz feed -b 64 --steps 2 --no-shuffle --hflip fl.tz -o fl1.tz
eq "feed --hflip: every sample kept or mirrored, 68 of 128 mirrored" \
    "$(recs fl1.tz 'int(sum((r[0]["image"][:, 0, 0, 0] > r[0]["image"][:, 0, 0, 1]).sum() for r in R))')" 68
eq "feed --hflip: values are the data's" "$(recs fl1.tz 'sorted(set(R[0][0]["image"].ravel().tolist())) == list(map(float, range(128)))')" True
tz feed -b 64 --steps 2 --start-step 1 --no-shuffle --hflip fl.tz -o fl2.tz
eq "feed --hflip: resumed step 1 has the same bits" "$(tz slice 1 fl1.tz | zstd -dcq | md5sum)" "$(zstd -dcq fl2.tz | md5sum)"
tz feed -b 64 --steps 1 --no-shuffle fl.tz -o fl3.tz
eq "feed without --hflip mirrors nothing" "$(recs fl3.tz 'int((R[0][0]["image"][:, 0, 0, 0] > R[0][0]["image"][:, 0, 0, 1]).sum())')" 0
bad "feed: missing input" 1 tz feed -b 2 --steps 3 nonexistent.tz

done_tests
