#!/bin/sh
# patch2img.sh - .tz streams back to PNG: exact round trips through
# img2patch, tar and directory outputs read back with their labels, grids,
# the patch field, clamping and rounding, safe names, errors. PNG pixels are
# read by an independent decoder (tests/reference/mkimages.py, zlib+numpy).
. "$(dirname "$0")/lib.sh"
MK="$PYTHON $REF_PY/mkimages.py"
$MK gen . >/dev/null || { echo "not ok - fixtures"; exit 1; }

# rec KIND: a hand-made record as a one-record stream KIND.tz
rec() { $MK record "$1.st" "$1" && zstd -qf "$1.st" -o "$1.tz"; }
pixels() { $MK pixels "$1" 2>&1 | sed 's/.*"px": //; s/}$//'; }

# ---- exact round trips ------------------------------------------------------------
img2patch g8.png -o rt.tz 2>/dev/null
img2patch rgb.png -o rgb.tz 2>/dev/null
ok "-d DIR" patch2img -d out rt.tz
ok "-d DIR, RGB" patch2img -d out rgb.tz
ok "8-bit gray: PNG -> .tz -> PNG exact" $MK samepx g8.png out/g8.png
ok "8-bit RGB: PNG -> .tz -> PNG exact" $MK samepx rgb.png out/rgb.png
ok "-i FILE and stdin give the same" sh -c 'patch2img -d out2 <rt.tz && cmp out/g8.png out2/g8.png'
img2patch -p 2 g8.png 2>/dev/null >pt.tz
ok "-f patch inverts the patch field" sh -c "patch2img -f patch -d pp pt.tz && cmp out/g8.png pp/g8.png"

# ---- tar and directory: WebDataset layout with .cls, read back by img2patch ------------
img2patch -b 2 shard.tar -o sh.tz 2>/dev/null
ok "--tar FILE" patch2img --tar back.tar sh.tz
eq "tar members" "$($PYTHON -c 'import tarfile,sys; print(" ".join(tarfile.open(sys.argv[1]).getnames()))' back.tar)" \
   "train/s000.png train/s000.cls train/s001.png train/s001.cls train/s002.png train/s002.cls"
img2patch -b 2 back.tar -o back.tz 2>/dev/null
ok "tar read back: same stream (pixels, labels, keys)" cmp sh.tz back.tz
ok "--tar - writes stdout" sh -c 'patch2img --tar - sh.tz >so.tar && cmp so.tar back.tar'
ok "-d with labels" patch2img -d wds sh.tz
eq ".cls beside each image" "$(cat wds/train/s001.cls)" 11
img2patch -b 2 wds -o wds.tz 2>/dev/null
ok "directory read back: same stream" cmp sh.tz wds.tz

# ---- grid --------------------------------------------------------------------------
img2patch -b 2 g8.png g8b.png g8.png 2>/dev/null >three.tz
ok "--grid" patch2img --grid g.png --cols 2 --pad 1 --pad-value 1 three.tz
ok "grid layout, spacing and values" $MK grid g.png 2 1 255 g8.png g8b.png g8.png
ok "--grid --rows 1 takes the first row" patch2img --grid g1.png --cols 2 --rows 1 --pad 0 three.tz
ok "one-row grid" $MK grid g1.png 2 0 0 g8.png g8b.png
# two fields: each row of image over the same row of recon
tz head -n 1 three.tz > ga.tz
tz feed --no-shuffle -b 2 --steps 2 --start-step 1 --rename image=recon three.tz > gb.tz
tz merge ga.tz gb.tz > gab.tz
ok "--grid -f image,recon" patch2img -f image,recon --grid g2.png --cols 2 --pad 0 gab.tz
ok "image row over recon row" $MK grid g2.png 2 0 0 g8.png g8b.png g8.png g8.png
bad "several fields need --grid" 2 patch2img -f image,recon -d x gab.tz

# ---- fields, clamping, names ------------------------------------------------------------
rec patch >/dev/null
ok "patch field with metadata" patch2img -d pf patch.tz
ok "patch field inverted: first image" $MK samepx p0_want.png pf/p0.png
ok "patch field inverted: second image" $MK samepx p1_want.png pf/p1.png
rec clamp >/dev/null
ok "clamp record" patch2img -d cl clamp.tz
eq "clamped to [0,1], floor(x*255+0.5), NaN -> 0" "$(pixels cl/c.png)" "[0, 0, 0, 1, 125, 255, 255, 0]"
rec recon >/dev/null
ok "-f recon" patch2img -f recon -d rc recon.tz
eq "-f picks the field" "$(pixels rc/r.png)" "[255, 255, 255, 255]"
rec nokeys >/dev/null
ok "no keys" patch2img -d nk nokeys.tz
eq "names from record and sample indices" "$(ls nk | tr '\n' ' ')" "000000-0000.png 000000-0001.png "
rec unsafe >/dev/null
mkdir sub
ok "unsafe keys" sh -c 'cd sub && patch2img -d us ../unsafe.tz'
eq "keys made safe, all under DIR" "$(cd sub && find . -type f | sort | tr '\n' ' ')" \
   "./us/000000-0003.png ./us/a/b.png ./us/abs/x.png ./us/evil.png ./us/ok/c.png "
rec symlink >/dev/null
mkdir outside sl && ln -s ../outside sl/link
bad "a symlinked directory is not followed" 1 patch2img -d sl symlink.tz
has "symlink: message" "sl/link: not a directory (symlinks are not followed)"
no_file "nothing written through the symlink" outside/x.png

# ---- errors ------------------------------------------------------------------------------
bad "missing input" 1 patch2img -d o nosuch.tz
has "missing input: message" "nosuch.tz: No such file or directory"
head -c 60 rt.tz >cut.tz
bad "truncated stream" 1 patch2img --tar cut.tar cut.tz
has "truncated stream: message names record 0" "cut.tz: record 0"
no_file "truncated stream: no tar left" cut.tar
bad "truncated stream, grid" 1 patch2img --grid cut.png --cols 2 cut.tz
no_file "truncated stream: no grid left" cut.png
bad "missing field" 1 patch2img -f nope -d o rt.tz
has "missing field: message" "record 0: .*nope"
: >empty.tz
ok "empty stream is valid" patch2img -d emp empty.tz
eq "empty stream writes nothing" "$(ls emp | wc -l)" 0
bad "grid of an empty stream" 1 patch2img --grid e.png --cols 2 empty.tz
no_file "no grid for an empty stream" e.png
bad "no output mode" 2 patch2img rt.tz
bad "two output modes" 2 patch2img -d o --tar t.tar rt.tz
bad "--grid without --cols" 2 patch2img --grid e.png rt.tz
bad "--cols without --grid" 2 patch2img -d o --cols 2 rt.tz
bad "--pad-value 2" 2 patch2img --grid e.png --cols 2 --pad-value 2 rt.tz
bad "two inputs" 2 patch2img -d o rt.tz rt.tz
ok "-h" patch2img -h

done_tests
