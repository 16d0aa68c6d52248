#!/bin/sh
# img2patch.sh - img2patch on tiny generated images (tests/reference/
# mkimages.py): every stream is checked with `zstd -t`, decompressed with
# `zstd -dc` and read back by an independent numpy reader that compares the
# pixels with the generator's own values; archives, IDX, options, errors.
. "$(dirname "$0")/lib.sh"
MK="$PYTHON $REF_PY/mkimages.py"
$MK gen . >/dev/null || { echo "not ok - fixtures"; exit 1; }

# chk "what" STREAM [check options]: zstd -t, zstd -dc, then the numpy check
chk() {
    what=$1 s=$2
    shift 2
    if zstd -tq "$s" 2>/dev/null && zstd -dcq "$s" >.raw 2>/dev/null; then
        ok "$what" $MK check .raw expect.safetensors "$@"
    else _no "$what" "zstd -t / zstd -dc failed on $s"; fi
}
# has "what" PATTERN: the last command's stderr matches

# ---- PNG colour types and depths -----------------------------------------------
ok "8-bit gray PNG" img2patch g8.png -o g8.tz
chk "8-bit gray values" g8.tz --keys g8 --batch 1
ok "8-bit RGB PNG" img2patch rgb.png -o rgb.tz
chk "8-bit RGB values" rgb.tz --keys rgb
ok "16-bit gray PNG" img2patch g16.png -o g16.tz
chk "16-bit values are x/65535" g16.tz --keys g16
ok "palette + tRNS PNG" img2patch pal.png -o pal.tz
chk "palette values, transparent on black" pal.tz --keys pal
ok "RGBA on a background" img2patch --background 0,0,255 rgba.png -o rgba.tz
chk "RGBA composited a*x+(1-a)*bg" rgba.tz --keys rgba --atol 1e-6
ok "gray to RGB" img2patch --channels 3 g8.png -o g8rgb.tz
chk "gray replicated to 3 channels" g8rgb.tz --to-rgb

# ---- streams: batches, zstd, seek table, pipes --------------------------------
ok "several files, -b 2" img2patch -b 2 g8.png g8b.png g8.png -o m.tz
chk "batches of 2, last short, keys in order" m.tz --keys g8,g8b,g8 --batch 2,1
ok "zstd -t accepts the stream" zstd -tq m.tz
eq "seek table at the end of a file" "$(tail -c 4 m.tz | od -An -tx1 | tr -d ' \n')" "b1ea928f"
img2patch g8.png g8b.png >p.tz 2>"$T/.err"
eq "stdout to a file works" "$?" 0
eq "seek table on stdout redirected to a file" "$(tail -c 4 p.tz | od -An -tx1 | tr -d ' \n')" "b1ea928f"
img2patch g8.png | zstd -dcq >.raw 2>/dev/null
ok "through a pipe" $MK check .raw expect.safetensors --keys g8
img2patch - <g8.png | zstd -dcq >.raw 2>/dev/null
eq "PNG on stdin has key 'stdin'" "$(grep -c '"keys":"\[\\"stdin\\"\]"' .raw)" 1
ok "-p 2: patch field and metadata" img2patch -p 2 -b 2 g8.png g8b.png -o pt.tz
chk "patch is the image in (C,P,P) raster order" pt.tz --patch 2 --batch 2

# ---- archives and directories (WebDataset .cls labels) -------------------------
for a in shard.tar shard.tar.gz shard.zip tree; do
    ok "$a" img2patch -b 2 $a -o a.tz
    chk "$a: values, keys, .cls labels" a.tz --labels --keys train/s000,train/s001,train/s002 --batch 2,1
done
img2patch --member 'train/s00[02]*' shard.tar.gz -o mem.tz 2>"$T/.err"
chk "--member selects members" mem.tz --labels --keys train/s000,train/s002
printf 'train/s000\t7\ntrain/s002\t9\n# comment\n' >map.tsv
img2patch --label-map map.tsv shard.tar -o map.tz 2>"$T/.err"
has "--label-map reports what it left out" "left out 1 samples"
chk "--label-map labels by key, leaves others out" map.tz --labels --label-map map.tsv --keys train/s000,train/s002

# ---- IDX --------------------------------------------------------------------------
K=imgs-idx3-ubyte/000000,imgs-idx3-ubyte/000001,imgs-idx3-ubyte/000002,imgs-idx3-ubyte/000003,imgs-idx3-ubyte/000004
ok "IDX with labels" img2patch -b 2 --labels labs-idx1-ubyte imgs-idx3-ubyte -o idx.tz
chk "IDX values and labels" idx.tz --labels --keys $K --batch 2,2,1
ok "gzipped IDX with gzipped labels" img2patch -b 2 --labels labs-idx1-ubyte.gz imgs-idx3-ubyte.gz -o idxgz.tz
chk "gzipped IDX values and labels" idxgz.tz --labels --keys $K
ok "IDX without labels" img2patch imgs-idx3-ubyte.gz -o nolab.tz
chk "no label field without --labels" nolab.tz --keys $K
ok "--limit 3" img2patch -b 2 --limit 3 imgs-idx3-ubyte.gz -o lim.tz
chk "--limit stops after 3 images" lim.tz --batch 2,1 --keys imgs-idx3-ubyte/000000,imgs-idx3-ubyte/000001,imgs-idx3-ubyte/000002

# ---- geometry and randomness ------------------------------------------------------
ok "--pad 2" img2patch --pad 2 --labels labs-idx1-ubyte.gz imgs-idx3-ubyte.gz -o pad.tz
chk "--pad 2 adds zeros around (28->32 style)" pad.tz --pad 2 --labels
ok "--size 2x3 --resize (area)" img2patch --size 2x3 --resize g8.png g8b.png -o rs.tz
chk "area resize 4x6 -> 2x3 is the 2x2 block mean" rs.tz --area 2 --atol 1e-6
ok "--size 8x10 pads centred" img2patch --size 8x10 g8.png -o sz.tz
chk "--size larger than the image pads 2 on each side" sz.tz --pad 2
ok "--flip" img2patch --flip --seed 3 imgs-idx3-ubyte.gz -o fl.tz
chk "--flip mirrors some images, not all" fl.tz --flip
A="--flip --crop random --size 3x5 --pad 1 --shuffle --seed 5 -b 2 imgs-idx3-ubyte.gz"
img2patch -j 1 $A -o j1.tz && img2patch -j 2 $A -o j2.tz && img2patch -j 2 $A -o j2b.tz
ok "same bits with -j 1 and -j 2" cmp j1.tz j2.tz
ok "same bits on a second run" cmp j2.tz j2b.tz
img2patch -j 2 $A --seed 6 -o s6.tz
if cmp -s j1.tz s6.tz; then _no "another seed changes the output" "identical"; else _ok "another seed changes the output"; fi
ok "--shuffle" img2patch --shuffle --seed 1 imgs-idx3-ubyte.gz -o sh.tz
chk "--shuffle keeps every sample" sh.tz
zstd -dcq sh.tz >.raw
if grep -q '000000\\",\\"imgs-idx3-ubyte/000001\\",\\"imgs-idx3-ubyte/000002\\",\\"imgs-idx3-ubyte/000003' .raw
then _no "--shuffle changes the order" "identity order"; else _ok "--shuffle changes the order"; fi
img2patch --progress g8.png -o pr.tz 2>"$T/.err"
has "--progress prints images/s" "images .*/s"

# ---- bad samples and --skip-bad -----------------------------------------------------
img2patch --skip-bad badmember.tar -o skip.tz 2>"$T/.err"
has "--skip-bad reports the count" "skipped 1 bad samples"
chk "--skip-bad keeps the good samples" skip.tz --labels --keys train/s000,train/s001,train/s002

# ---- errors: exit 1, one line naming the file, no output file --------------------
bad "truncated PNG" 1 img2patch g8.png trunc.png -o e.tz
has "truncated PNG: message" "^img2patch: trunc.png: truncated PNG"
no_file "truncated PNG: no output file" e.tz
bad "non-PNG member in a tar" 1 img2patch badmember.tar -o e.tz
has "non-PNG member: message names it" "^img2patch: badmember.tar: train/z.txt: not a PNG"
no_file "non-PNG member: no output file" e.tz
bad "corrupt .png member in a tar" 1 img2patch badpng.tar -o e.tz
has "corrupt member: message names it" "badpng.tar: train/zz.png: not a PNG file"
bad "bad .cls in a tar" 1 img2patch badcls.tar -o e.tz
has "bad .cls: message names it" "badcls.tar: train/zz.cls: not an ASCII decimal"
bad "not a PNG file" 1 img2patch notpng.png -o e.tz
has "not a PNG: message" "notpng.png: not a PNG, IDX or archive file"
bad "missing file" 1 img2patch nosuch.png -o e.tz
has "missing file: message" "nosuch.png: No such file or directory"
no_file "missing file: no output file" e.tz
bad "empty file" 1 img2patch empty.png -o e.tz
has "empty file: message" "empty.png: empty file"
mkdir emptydir
bad "empty directory" 1 img2patch emptydir -o e.tz
has "empty directory: message" "emptydir: no images"
bad "empty stdin" 1 img2patch - -o e.tz </dev/null
has "empty stdin: message" "stdin: no images"
no_file "empty input: no output file" e.tz
bad "PNG over the size limit" 1 img2patch huge.png -o e.tz
has "size limit: message names it" "width 20000 is over the limit of 16384 (PNG_MAX_SIDE)"
bad "IDX over the size limit" 1 img2patch imgs-huge-idx3-ubyte -o e.tz
has "IDX size limit: message names it" "height 30000 is over the limit of 16384 (PNG_MAX_SIDE)"
mkdir big && truncate -s 65M big/x.png
bad "member over the size limit" 1 img2patch big -o e.tz
has "member limit: message names it" "big: x.png: 68157440 bytes is over the limit of 67108864 (IMGSRC_MAX_MEMBER)"
bad "truncated IDX" 1 img2patch imgs-trunc-idx3-ubyte -o e.tz
has "truncated IDX: message" "truncated IDX file: image 4 of 5"
bad "labels for the wrong count" 1 img2patch --labels labs4-idx1-ubyte imgs-idx3-ubyte -o e.tz
has "labels count: message" "4 labels for 5 images"
bad "images of different sizes" 1 img2patch g8.png g16.png -o e.tz
has "different sizes: message" "g16.png: image is 3x5, earlier images are 4x6"
bad "output directory missing" 1 img2patch g8.png -o nodir/x.tz
no_file "still nothing written" e.tz
if command -v script >/dev/null; then
    script -qec "img2patch g8.png" /dev/null >tty.out 2>&1
    eq "refuses binary output to a terminal" "$?" 1
    eq "terminal refusal message" "$(grep -c 'refusing to write binary data to a terminal' tty.out)" 1
else skip_test "no script(1): terminal refusal"; fi

# ---- usage errors: exit 2 ------------------------------------------------------------
bad "-b 0" 2 img2patch -b 0 g8.png -o e.tz
bad "-b x" 2 img2patch -b x g8.png -o e.tz
bad "--size 0x3" 2 img2patch --size 0x3 g8.png -o e.tz
bad "--size 3x" 2 img2patch --size 3x g8.png -o e.tz
bad "--channels 2" 2 img2patch --channels 2 g8.png -o e.tz
bad "--crop diagonal" 2 img2patch --size 4 --crop diagonal g8.png -o e.tz
bad "--resize without --size" 2 img2patch --resize g8.png -o e.tz
bad "--resize-mode cubic" 2 img2patch --size 4 --resize --resize-mode cubic g8.png -o e.tz
bad "--background 1,2" 2 img2patch --background 1,2 g8.png -o e.tz
bad "--background 0,0,256" 2 img2patch --background 0,0,256 g8.png -o e.tz
bad "--pad -1" 2 img2patch --pad -1 g8.png -o e.tz
bad "-p 5 with --size 32" 2 img2patch -p 5 --size 32 g8.png -o e.tz
bad "-l 99" 2 img2patch -l 99 g8.png -o e.tz
bad "unknown option" 2 img2patch --frobnicate g8.png -o e.tz
bad "no input" 2 img2patch -o e.tz
no_file "usage errors write nothing" e.tz
ok "-h" img2patch -h
ok "--version" img2patch --version

done_tests
