"""mkimages.py - tiny test images and an independent checker for the tool
tests of img2patch and patch2img (tests/tools/*.sh). numpy + the standard
library only: PNG written and read here with zlib, IDX with struct, archives
with tarfile/zipfile, .tz records read with stio.py after `zstd -dc`.

  mkimages.py gen DIR            write the fixture set (listed in gen()) and
                                 DIR/expect.safetensors: each key's expected
                                 F32 [C,H,W] image; labels in its metadata
  mkimages.py check RAW EXPECT [options]
                                 RAW is `zstd -dc` of a stream: every record's
                                 image[i] must equal EXPECT[keys[i]] exactly.
      --keys K1,K2,..            ... and the keys must be these, in order
      --batch B1,B2,..           ... and the records have these sizes
      --labels                   label[i] must be EXPECT's label (else no
                                 label field); --label-map FILE: that map's
      --atol X                   equal within X
      --to-rgb, --area F, --pad N   expect gray replicated, F x F block means,
                                 N zero pixels around (in this order)
      --flip                     some but not all images are mirrored
      --patch P                  `patch` is image in (C,P,P) raster order
  mkimages.py png OUT.png H W C DEPTH SEED    one random PNG
  mkimages.py pixels A.png       print shape and pixels (8-bit) as JSON
  mkimages.py samepx A.png B.png exit 1 unless the decoded pixels are equal
  mkimages.py grid G.png COLS PAD PADV A.png ...   see grid_check
  mkimages.py record OUT.st KIND see cmd_record: a hand-made safetensors record
"""
import io
import json
import os
import struct
import sys
import tarfile
import zipfile
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

PNG_SIG = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}   # channels -> PNG colour type


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_bytes(px, depth=8, palette=None, trns=None, ihdr_size=None):
    """px: uint8/uint16 [H,W] or [H,W,C]; palette: list of RGB for a colour
    type 3 image whose px holds indices. ihdr_size=(w,h) lies in IHDR."""
    px = np.asarray(px)
    if px.ndim == 2:
        px = px[:, :, None]
    h, w, c = px.shape
    ctype = 3 if palette is not None else COLOR_TYPES[c]
    iw, ih = ihdr_size or (w, h)
    out = PNG_SIG + _chunk(b"IHDR", struct.pack(">IIBBBBB", iw, ih, depth, ctype, 0, 0, 0))
    if palette is not None:
        out += _chunk(b"PLTE", bytes(v for rgb in palette for v in rgb))
    if trns is not None:
        out += _chunk(b"tRNS", bytes(trns))
    dt = ">u2" if depth == 16 else np.uint8
    rows = b"".join(b"\0" + px[y].astype(dt).tobytes() for y in range(h))
    out += _chunk(b"IDAT", zlib.compress(rows))
    return out + _chunk(b"IEND", b"")


def png_read(data):
    """Decode 8-bit non-interlaced gray/GA/RGB/RGBA PNG (what tokpipe writes)."""
    assert data[:8] == PNG_SIG, "not a PNG"
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = hdr
    assert depth == 8 and interlace == 0, hdr
    c = {0: 1, 4: 2, 2: 3, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride = w * c
    out = np.zeros((h, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)], np.uint8).astype(np.int32)
        cur = np.zeros(stride, np.int32)
        for x in range(stride):
            a = cur[x - c] if x >= c else 0
            b = prev[x]
            cc = prev[x - c] if x >= c else 0
            if f == 0:
                p = 0
            elif f == 1:
                p = a
            elif f == 2:
                p = b
            elif f == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - cc), abs(a - cc), abs(a + b - 2 * cc)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            cur[x] = (line[x] + p) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, c).astype(np.uint8)


def chw(px, scale):
    """[H,W,C] integers -> F32 [C,H,W] / scale, as float32 division."""
    px = np.asarray(px)
    if px.ndim == 2:
        px = px[:, :, None]
    return (px.astype(np.float32) / np.float32(scale)).transpose(2, 0, 1).copy()


def idx_bytes(a):
    a = np.asarray(a, np.uint8)
    return struct.pack(">BBBB", 0, 0, 8, a.ndim) + b"".join(struct.pack(">I", d) for d in a.shape) + a.tobytes()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def tar_of(path, members, mode="w"):
    with tarfile.open(path, mode) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def gen(d):
    """The fixture set. Keys in expect are what img2patch must report."""
    rs = np.random.RandomState(7)
    exp, labels = {}, {}
    g8 = rs.randint(0, 256, (4, 6)).astype(np.uint8)
    g8b = rs.randint(0, 256, (4, 6)).astype(np.uint8)
    rgb = rs.randint(0, 256, (4, 6, 3)).astype(np.uint8)
    g16 = rs.randint(0, 65536, (3, 5)).astype(np.uint16)
    write(f"{d}/g8.png", png_bytes(g8))
    write(f"{d}/g8b.png", png_bytes(g8b))
    write(f"{d}/rgb.png", png_bytes(rgb))
    write(f"{d}/g16.png", png_bytes(g16, depth=16))
    exp["g8"], exp["g8b"], exp["rgb"], exp["g16"] = chw(g8, 255), chw(g8b, 255), chw(rgb, 255), chw(g16, 65535)
    # RGBA over a blue background (0,0,255): out = a*x + (1-a)*bg, in float32
    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [200, 100, 50, 128]]], np.uint8)
    write(f"{d}/rgba.png", png_bytes(rgba))
    a = rgba[..., 3:].astype(np.float32) / np.float32(255)
    x = rgba[..., :3].astype(np.float32) / np.float32(255)
    bg = np.array([0, 0, 1], np.float32)
    exp["rgba"] = (a * x + (np.float32(1) - a) * bg).astype(np.float32).transpose(2, 0, 1).copy()
    # palette with tRNS: index 0 opaque red, 1 fully transparent green
    pal = np.array([[0, 1], [1, 0]], np.uint8)
    write(f"{d}/pal.png", png_bytes(pal, palette=[(255, 0, 0), (0, 255, 0)], trns=[255, 0]))
    exp["pal"] = np.stack([(pal == 0).astype(np.float32), np.zeros((2, 2), np.float32),
                           np.zeros((2, 2), np.float32)])   # on the default black
    # bad files
    write(f"{d}/trunc.png", png_bytes(g8)[:60])
    write(f"{d}/notpng.png", b"this is not a png file at all\n")
    write(f"{d}/huge.png", png_bytes(np.zeros((1, 1), np.uint8), ihdr_size=(20000, 1)))
    write(f"{d}/empty.png", b"")
    # IDX: 5 images 4x6 and labels, raw and gzip
    imgs = rs.randint(0, 256, (5, 4, 6)).astype(np.uint8)
    labs = np.array([3, 1, 4, 1, 5], np.uint8)
    write(f"{d}/imgs-idx3-ubyte", idx_bytes(imgs))
    write(f"{d}/labs-idx1-ubyte", idx_bytes(labs))
    import gzip
    write(f"{d}/imgs-idx3-ubyte.gz", gzip.compress(idx_bytes(imgs)))
    write(f"{d}/labs-idx1-ubyte.gz", gzip.compress(idx_bytes(labs)))
    write(f"{d}/labs4-idx1-ubyte", idx_bytes(labs[:4]))
    write(f"{d}/imgs-trunc-idx3-ubyte", idx_bytes(imgs)[:-5])
    write(f"{d}/imgs-huge-idx3-ubyte", struct.pack(">BBBBIII", 0, 0, 8, 3, 1, 30000, 2) + b"\0" * 60000)
    for i in range(5):
        exp[f"imgs-idx3-ubyte/{i:06d}"] = chw(imgs[i], 255)
        labels[f"imgs-idx3-ubyte/{i:06d}"] = int(labs[i])
    # WebDataset shard: KEY.cls + KEY.png (sorted), a JSON extra, a README without a dot
    shard = []
    for i in range(3):
        px = rs.randint(0, 256, (4, 6, 3)).astype(np.uint8)
        key = f"train/s{i:03d}"
        exp[key], labels[key] = chw(px, 255), 10 + i
        shard += [(f"{key}.cls", str(10 + i).encode()), (f"{key}.json", b"{}"), (f"{key}.PNG", png_bytes(px))]
    shard.insert(0, ("README", b"not a sample"))
    tar_of(f"{d}/shard.tar", shard)
    tar_of(f"{d}/shard.tar.gz", shard, "w:gz")
    with zipfile.ZipFile(f"{d}/shard.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in shard:
            z.writestr(name, data)
    tar_of(f"{d}/badmember.tar", shard + [("train/z.txt", b"hello")])
    tar_of(f"{d}/badpng.tar", shard + [("train/zz.png", b"garbage, not a PNG")])
    tar_of(f"{d}/badcls.tar", shard + [("train/zz.cls", b"seven"), ("train/zz.png", png_bytes(g8))])
    # a directory with the same samples, nested
    os.makedirs(f"{d}/tree/train", exist_ok=True)
    for name, data in shard:
        if "/" in name:
            write(f"{d}/tree/{name}", data)
    write(f"{d}/tree/.hidden.png", b"skipped: no key")
    stio.save(f"{d}/expect.safetensors", exp, {"labels": json.dumps(labels)})


def split_records(raw):
    recs, pos = [], 0
    while pos < len(raw):
        n = struct.unpack("<Q", raw[pos:pos + 8])[0]
        header = json.loads(raw[pos + 8:pos + 8 + n])
        end = max([v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"] + [0])
        recs.append(stio.loads(raw[pos:pos + 8 + n + end]))
        pos += 8 + n + end
    return recs


def opt(args, name, conv=str, default=None):
    return conv(args[args.index(name) + 1]) if name in args else default


def expected(e, args):
    """The expected image after img2patch's --channels 3, --size/--resize
    (integer area factor), --pad, as given to check."""
    if "--to-rgb" in args:
        e = np.repeat(e, 3, axis=0)
    f = opt(args, "--area", int)
    if f:
        c, h, w = e.shape
        e = e.astype(np.float64).reshape(c, h // f, f, w // f, f).mean(axis=(2, 4)).astype(np.float32)
    p = opt(args, "--pad", int)
    if p:
        e = np.pad(e, ((0, 0), (p, p), (p, p)))
    return e


def check(raw_path, exp_path, args):
    exp, meta = stio.load(exp_path)
    labels = json.loads(meta.get("labels", "{}"))
    if "--label-map" in args:
        with open(opt(args, "--label-map")) as f:
            labels = {k: int(v) for k, v in (line.rstrip("\n").rsplit("\t", 1) for line in f if not line.startswith("#"))}
    want_keys = opt(args, "--keys", lambda s: s.split(","))
    batch = opt(args, "--batch", lambda s: [int(b) for b in s.split(",")])
    atol = opt(args, "--atol", float, 0.0)
    P = opt(args, "--patch", int)
    with open(raw_path, "rb") as f:
        recs = split_records(f.read())
    keys, sizes, flipped = [], [], 0
    for t, m in recs:
        ks = json.loads(m["keys"])
        img = t["image"]
        assert img.dtype == np.float32 and img.ndim == 4 and img.shape[0] == len(ks), (img.shape, ks)
        sizes.append(len(ks))
        for i, k in enumerate(ks):
            assert k in exp, "unexpected key %r" % k
            e = expected(exp[k], args)
            same = lambda a: a.shape == img[i].shape and np.allclose(img[i], a, rtol=0, atol=atol)
            if "--flip" in args and not same(e) and same(e[:, :, ::-1]):
                flipped += 1
            elif not same(e):
                sys.exit("image %r differs: shape %s vs %s, max diff %s" % (
                    k, img[i].shape, e.shape, np.abs(img[i] - e).max() if img[i].shape == e.shape else "-"))
            if "--labels" in args:
                assert "label" in t and t["label"].dtype == np.int32, "no I32 label field"
                assert int(t["label"][i]) == labels[k], (k, int(t["label"][i]), labels[k])
        if "--labels" not in args:
            assert "label" not in t, "unexpected label field"
        if P:
            b, c, h, w = img.shape
            want = img.reshape(b, c, h // P, P, w // P, P).transpose(0, 2, 4, 1, 3, 5).reshape(b, -1, c * P * P)
            assert np.array_equal(t["patch"], want), "patch field is not the image in (C,P,P) raster order"
            assert [m["patch_size"], m["channels"], m["height"], m["width"]] == [str(v) for v in (P, c, h, w)], m
        keys += ks
    if want_keys is not None and keys != want_keys:
        sys.exit("keys %s, expected %s" % (keys, want_keys))
    if batch is not None and sizes != batch:
        sys.exit("record sizes %s, expected %s" % (sizes, batch))
    if "--flip" in args and not 0 < flipped < len(keys):
        sys.exit("%d of %d images flipped: expected some but not all" % (flipped, len(keys)))
    print("ok: %d records, %d images, %d flipped" % (len(recs), len(keys), flipped))


def cmd_record(args):
    """record OUT.st KIND: hand-made records for patch2img tests.
    clamp:   image [1,1,1,8] = -1, 0, 0.4/255, 0.6/255, 0.49, 1, 2, NaN; keys ["c"]
    patch:   patch [2,4,12] of a known [2,3,4,4] image, P=2, no image field
    unsafe:  image [5,1,2,2], keys with ../, absolute and empty names
    nokeys:  image [2,3,2,2], no keys
    recon:   image and recon [1,1,2,2] with different values"""
    out, kind = args[0], args[1]
    rs = np.random.RandomState(3)
    if kind == "clamp":
        v = np.array([-1, 0, 0.4 / 255, 0.6 / 255, 0.49, 1, 2, np.nan], np.float32)
        t, m = {"image": v.reshape(1, 1, 1, 8)}, {"keys": json.dumps(["c"])}
    elif kind == "patch":
        img = (rs.randint(0, 256, (2, 3, 4, 4)) / 255.0).astype(np.float32)
        p = img.reshape(2, 3, 2, 2, 2, 2).transpose(0, 2, 4, 1, 3, 5).reshape(2, 4, 12)
        t = {"patch": np.ascontiguousarray(p)}
        m = {"keys": json.dumps(["p0", "p1"]), "patch_size": 2, "channels": 3, "height": 4, "width": 4}
        for i in range(2):   # what patch2img must write, as PNG files beside OUT
            px = np.round(img[i] * 255).astype(np.uint8).transpose(1, 2, 0)
            write(os.path.join(os.path.dirname(out) or ".", "p%d_want.png" % i), png_bytes(px))
    elif kind == "unsafe":
        t = {"image": np.full((5, 1, 2, 2), 0.5, np.float32)}
        m = {"keys": json.dumps(["../evil", "/abs/x", "a/../../b", "", "ok/./c"])}
    elif kind == "nokeys":
        t = {"image": np.zeros((2, 3, 2, 2), np.float32)}
        m = {}
    elif kind == "recon":
        t = {"image": np.zeros((1, 1, 2, 2), np.float32), "recon": np.ones((1, 1, 2, 2), np.float32)}
        m = {"keys": json.dumps(["r"])}
    elif kind == "symlink":
        t = {"image": np.zeros((1, 1, 2, 2), np.float32)}
        m = {"keys": json.dumps(["link/x"])}
    else:
        sys.exit("unknown record kind " + kind)
    stio.save(out, t, m)


def grid_check(args):
    """grid G.png COLS PAD PADV A.png ...: G must be the images A... placed
    row by row, PAD pixels of PADV (0-255) between and around them."""
    with open(args[0], "rb") as f:
        g = png_read(f.read())
    cols, pad, padv = int(args[1]), int(args[2]), int(args[3])
    ims = []
    for p in args[4:]:
        with open(p, "rb") as f:
            ims.append(png_read(f.read()))
    h, w, c = ims[0].shape
    rows = (len(ims) + cols - 1) // cols
    want = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), padv, np.uint8)
    for n, im in enumerate(ims):
        y, x = pad + (n // cols) * (h + pad), pad + (n % cols) * (w + pad)
        want[y:y + h, x:x + w] = im
    if g.shape != want.shape or not np.array_equal(g, want):
        sys.exit("grid differs: shape %s, expected %s" % (g.shape, want.shape))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen":
        gen(args[0])
    elif cmd == "check":
        check(args[0], args[1], args[2:])
    elif cmd == "png":
        h, w, c, depth, seed = map(int, args[1:6])
        rs = np.random.RandomState(seed)
        px = rs.randint(0, 256 if depth == 8 else 65536, (h, w, c))
        write(args[0], png_bytes(px, depth=depth))
    elif cmd == "pixels":
        with open(args[0], "rb") as f:
            px = png_read(f.read())
        print(json.dumps({"shape": list(px.shape), "px": px.ravel().tolist()}))
    elif cmd == "samepx":
        with open(args[0], "rb") as f:
            a = png_read(f.read())
        with open(args[1], "rb") as f:
            b = png_read(f.read())
        if a.shape != b.shape or not np.array_equal(a, b):
            sys.exit("pixels differ: shapes %s and %s" % (a.shape, b.shape))
    elif cmd == "grid":
        grid_check(args)
    elif cmd == "record":
        cmd_record(args)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
