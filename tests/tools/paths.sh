#!/bin/sh
# This script tests: patch2img tz (path safety of files named from data)
# Also requires: vq
# Files named from record keys (patch2img -d, --tar) or field names (tz npy)
# stay under the output directory: no absolute path, no "..", no symlink
# followed, whether planted as a directory component, at the final name,
# or at the temporary name an atomic write uses (.NAME.tmp.PID; the test
# plants it from a shell that then execs the tool, so the pid is known).
. "$(dirname "$0")/lib.sh"

mkdir outside
echo victim >outside/victim
mkfifo outside/fifo
# every regular file and link under $T outside the tool's directory, to
# check that nothing was created or changed there
snap() { find outside -exec ls -ld {} + | awk '{print $1, $5, $NF}'; cksum outside/victim; }
before=$(snap)

# ---- patch2img -d: crafted keys -----------------------------------------------------
tz make --field 'image:F32:9x1x2x2=0.5' \
    --meta 'keys=["/abs/x","../../evil","a/../../b","./c","..","","x\\y","d//e","tab\tname"]' -o k.tz
ok "patch2img -d with crafted keys" patch2img -d out k.tz
eq "every file under DIR, names made safe" "$(find out -type f | sort | tr '\n' ' ')" \
   "out/000000-0004.png out/000000-0005.png out/a/b.png out/abs/x.png out/c.png out/d/e.png out/evil.png out/tab_name.png out/x_y.png "
eq "nothing outside DIR" "$(find . -name '*.png' ! -path './out/*' | wc -l)" 0

# ---- patch2img --tar: member names ------------------------------------------------------
ok "patch2img --tar with crafted keys" patch2img --tar k.tar k.tz
eq "tar members relative, no '..'" "$("$PYTHON" -c '
import tarfile
print(" ".join(sorted(m.name for m in tarfile.open("k.tar"))))')" \
   "000000-0004.png 000000-0005.png a/b.png abs/x.png c.png d/e.png evil.png tab_name.png x_y.png"

# ---- patch2img -d: planted symlinks ---------------------------------------------------------
tz make --field 'image:F32:1x1x2x2=0.5' --meta 'keys=["link/x"]' -o lk.tz
mkdir sl && ln -s ../outside sl/link
bad "symlinked directory component" 1 patch2img -d sl lk.tz
has "symlinked component: message" "sl/link: not a directory (symlinks are not followed)"
no_file "nothing written through the linked directory" outside/x.png

tz make --field 'image:F32:1x1x2x2=0.5' --meta 'keys=["evil"]' -o ev.tz
mkdir fl && ln -s ../outside/victim fl/evil.png
ok "symlink at the final name" patch2img -d fl ev.tz
eq "the link is replaced by the image" "$(test -f fl/evil.png && ! test -L fl/evil.png && head -c 4 fl/evil.png | od -An -c | tr -d ' ')" "211PNG"
eq "its target is untouched" "$(cat outside/victim)" victim

# a wrapper named like the tool plants the link at .p2i.tmp.PID, PID being
# its own, which exec hands to the tool
mkdir tl wrap
printf '#!/bin/sh\nln -s ../outside/victim tl/.p2i.tmp.$$\nexec "%s/patch2img" "$@"\n' "$TP_BIN" >wrap/patch2img
chmod +x wrap/patch2img
bad "symlink at the temporary name: refused" 1 wrap/patch2img -d tl ev.tz
has "temporary link: message" "tl/evil.png: Too many levels of symbolic links"
eq "temporary link: target untouched" "$(cat outside/victim)" victim

# ---- tz npy: field names and planted symlinks ----------------------------------------------
tz make --field '../x:F32:2=1' --field '/abs:F32:2=2' --field '.hid:F32:2=3' -o f.tz
ok "npy with crafted field names" tz npy -d np -i f.tz
eq "npy: names flattened into DIR" "$(ls -A np | tr '\n' ' ')" "_._x.npy _abs.npy _hid.npy "

tz make --field 'image:F32:2x3=1' -o im.tz
mkdir nl && ln -s ../outside/fifo nl/image.npy
ok "npy over a symlink to a FIFO outside (no hang)" timeout 20 tz npy -d nl -i im.tz
eq "npy: the link is replaced by a file" "$(test -f nl/image.npy && ! test -L nl/image.npy && echo file)" file
eq "npy: the FIFO is still a FIFO" "$(test -p outside/fifo && echo fifo)" fifo
mkdir nv && ln -s ../outside/victim nv/image.npy
ok "npy over a symlink to a file outside" tz npy -d nv -i im.tz
eq "npy: the link's target is untouched" "$(cat outside/victim)" victim

# ---- atomic outputs: a symlink at the temporary name ----------------------------------------
mkdir at
ok "stream output with a planted temporary link" \
    sh -c 'ln -s ../outside/victim at/.s.tz.tmp.$$; exec tz make --field x:F32:2=1 -o at/s.tz'
ok "the stream is complete" tz check at/s.tz
eq "stream: the link's target is untouched" "$(cat outside/victim)" victim
eq "stream: no temporary left" "$(ls -A at)" s.tz
ok "weights with a planted temporary link" \
    sh -c 'ln -s ../outside/victim at/.w.st.tmp.$$; exec vq --init -w at/w.st --arch vqgan-tiny --set dim=8 --set codes=64 -j 1'
ok "weights complete" "$PYTHON" -c "import sys; sys.path.insert(0, '$REF_PY'); import stio; stio.load('at/w.st')"
eq "weights: no temporary left" "$(ls -A at | tr '\n' ' ')" "s.tz w.st " 
eq "weights: the link's target is untouched" "$(cat outside/victim)" victim

eq "nothing outside changed" "$(snap)" "$before"
done_tests
